#!/usr/bin/env bash
# Regenerates the Swift code of the wire schema (Protos/durable/v1/*.proto) into Sources/DurableWire/Generated.
#
# Needs Debian's `protoc` (protobuf-compiler) and `protoc-gen-swift` 1.39.0. The plugin is built from the
# swift-protobuf package when it is not on PATH (about 100 s, once). The build of the project never runs this:
# the generated files are committed. `--check` regenerates into a temporary folder and fails if the committed
# files differ.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v protoc >/dev/null; then
    echo "protoc is missing: apt-get install -y protobuf-compiler" >&2
    exit 1
fi

plugin=$(command -v protoc-gen-swift || true)
if [ -z "$plugin" ]; then
    cache=".build-protoc-gen-swift"
    if [ ! -x "$cache/swift-protobuf/.build/release/protoc-gen-swift" ]; then
        echo "building protoc-gen-swift 1.39.0 into $cache (once)"
        rm -rf "$cache" && mkdir -p "$cache"
        git clone -q --branch 1.39.0 https://github.com/apple/swift-protobuf.git "$cache/swift-protobuf"
        (cd "$cache/swift-protobuf" && swift build -c release --product protoc-gen-swift)
    fi
    plugin="$PWD/$cache/swift-protobuf/.build/release/protoc-gen-swift"
fi

out="Sources/DurableWire/Generated"
if [ "${1:-}" = "--check" ]; then
    out=$(mktemp -d)
fi
mkdir -p "$out"
protoc --plugin=protoc-gen-swift="$plugin" --swift_out="$out" --swift_opt=Visibility=Public \
    --proto_path=Protos Protos/durable/v1/*.proto
# One folder: the generated files are named after the protos.
find "$out" -name '*.pb.swift' -path '*/durable/v1/*' -exec mv {} "$out" \;
rm -rf "$out/durable"

if [ "${1:-}" = "--check" ]; then
    diff -r -x README.md "$out" Sources/DurableWire/Generated && echo "generated code matches Protos/"
fi
