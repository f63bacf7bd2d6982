/*
 * durable_invoke: calls an object on a durable-objects node or gateway from C, using only the .proto files
 * (compiled with protoc-c) and libprotobuf-c. It shows the protocol is language-neutral.
 *
 *   durable_invoke HOST PORT BINDING OBJECT_NAME URL [METHOD]
 *
 * It resolves BINDING to its namespace (durable.v1.Objects/ResolveBinding), then sends one request to the object
 * named OBJECT_NAME (durable.v1.Objects/Invoke, addressing the object by name so no HMAC is needed here), and
 * prints "STATUS BODY" on one line. Exit status: 0 on an HTTP response, 1 on a protocol error, 2 on bad usage.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "durable/v1/objects.pb-c.h"
#include "durable/v1/wire.pb-c.h"

static int connect_to(const char *host, const char *port) {
    struct addrinfo hints = {0}, *result = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &result) != 0) return -1;
    int fd = -1;
    for (struct addrinfo *entry = result; entry != NULL; entry = entry->ai_next) {
        fd = socket(entry->ai_family, entry->ai_socktype, entry->ai_protocol);
        if (fd < 0) continue;
        if (connect(fd, entry->ai_addr, entry->ai_addrlen) == 0) break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(result);
    return fd;
}

static int write_all(int fd, const uint8_t *bytes, size_t length) {
    while (length > 0) {
        ssize_t written = write(fd, bytes, length);
        if (written <= 0) return -1;
        bytes += written;
        length -= (size_t)written;
    }
    return 0;
}

static int read_all(int fd, uint8_t *bytes, size_t length) {
    while (length > 0) {
        ssize_t got = read(fd, bytes, length);
        if (got <= 0) return -1;
        bytes += got;
        length -= (size_t)got;
    }
    return 0;
}

/* Sends a call frame and returns the reply payload of that call (skipping other frames), or NULL. */
static ProtobufCBinaryData call(int fd, uint64_t call_id, const char *method, const ProtobufCMessage *request) {
    ProtobufCBinaryData none = {0, NULL};
    Durable__V1__Call call_message = DURABLE__V1__CALL__INIT;
    call_message.method = (char *)method;
    call_message.timeout_micros = 10 * 1000 * 1000;
    call_message.payload.len = protobuf_c_message_get_packed_size(request);
    call_message.payload.data = malloc(call_message.payload.len + 1);
    protobuf_c_message_pack(request, call_message.payload.data);

    Durable__V1__Frame frame = DURABLE__V1__FRAME__INIT;
    frame.call_id = call_id;
    frame.kind_case = DURABLE__V1__FRAME__KIND_CALL;
    frame.call = &call_message;
    size_t length = durable__v1__frame__get_packed_size(&frame);
    uint8_t *buffer = malloc(4 + length);
    uint32_t header = htonl((uint32_t)length);
    memcpy(buffer, &header, 4);
    durable__v1__frame__pack(&frame, buffer + 4);
    int sent = write_all(fd, buffer, 4 + length);
    free(buffer);
    free(call_message.payload.data);
    if (sent != 0) return none;

    for (;;) {
        uint32_t reply_length;
        if (read_all(fd, (uint8_t *)&reply_length, 4) != 0) return none;
        reply_length = ntohl(reply_length);
        uint8_t *reply_bytes = malloc(reply_length + 1);
        if (read_all(fd, reply_bytes, reply_length) != 0) {
            free(reply_bytes);
            return none;
        }
        Durable__V1__Frame *reply = durable__v1__frame__unpack(NULL, reply_length, reply_bytes);
        free(reply_bytes);
        if (reply == NULL) return none;
        if (reply->call_id != call_id || reply->kind_case != DURABLE__V1__FRAME__KIND_REPLY) {
            durable__v1__frame__free_unpacked(reply, NULL);
            continue;
        }
        Durable__V1__Status *status = reply->reply->status;
        if (status != NULL && status->code != DURABLE__V1__CODE__OK) {
            fprintf(stderr, "%s failed: code %d: %s\n", method, status->code, status->message);
            durable__v1__frame__free_unpacked(reply, NULL);
            return none;
        }
        ProtobufCBinaryData payload;
        payload.len = reply->reply->payload.len;
        payload.data = malloc(payload.len + 1);
        memcpy(payload.data, reply->reply->payload.data, payload.len);
        durable__v1__frame__free_unpacked(reply, NULL);
        return payload;
    }
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: %s HOST PORT BINDING OBJECT_NAME URL [METHOD]\n", argv[0]);
        return 2;
    }
    int fd = connect_to(argv[1], argv[2]);
    if (fd < 0) {
        fprintf(stderr, "cannot connect to %s:%s\n", argv[1], argv[2]);
        return 1;
    }

    Durable__V1__ResolveBindingRequest resolve = DURABLE__V1__RESOLVE_BINDING_REQUEST__INIT;
    resolve.binding = argv[3];
    ProtobufCBinaryData resolved = call(fd, 1, "durable.v1.Objects/ResolveBinding", &resolve.base);
    if (resolved.data == NULL) return 1;
    Durable__V1__ResolveBindingResponse *binding =
        durable__v1__resolve_binding_response__unpack(NULL, resolved.len, resolved.data);
    free(resolved.data);
    if (binding == NULL) return 1;

    Durable__V1__HttpRequest http = DURABLE__V1__HTTP_REQUEST__INIT;
    http.method = argc > 6 ? argv[6] : "GET";
    http.url = argv[5];
    Durable__V1__InvokeRequest invoke = DURABLE__V1__INVOKE_REQUEST__INIT;
    invoke.namespace_id = binding->namespace_id;
    invoke.object_name = argv[4];
    invoke.request = &http;
    ProtobufCBinaryData invoked = call(fd, 2, "durable.v1.Objects/Invoke", &invoke.base);
    durable__v1__resolve_binding_response__free_unpacked(binding, NULL);
    if (invoked.data == NULL) return 1;
    Durable__V1__InvokeResponse *response = durable__v1__invoke_response__unpack(NULL, invoked.len, invoked.data);
    free(invoked.data);
    if (response == NULL || response->response == NULL) return 1;
    printf("%u %.*s\n", response->response->status, (int)response->response->body.len,
           (const char *)response->response->body.data);
    durable__v1__invoke_response__free_unpacked(response, NULL);
    close(fd);
    return 0;
}
