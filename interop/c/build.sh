#!/usr/bin/env bash
# Builds the C interoperability client into OUT (default: interop/c/build) from the .proto files alone.
# Needs protoc-c (protobuf-c-compiler), libprotobuf-c-dev and a C compiler.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-$root/interop/c/build}"
mkdir -p "$out"
protoc-c --c_out="$out" --proto_path="$root/Protos" "$root"/Protos/durable/v1/*.proto
cc -std=c11 -Wall -Wextra -Werror -O2 -D_POSIX_C_SOURCE=200809L -I"$out" \
    "$root/interop/c/durable_invoke.c" "$out"/durable/v1/*.pb-c.c -lprotobuf-c -o "$out/durable_invoke"
echo "$out/durable_invoke"
