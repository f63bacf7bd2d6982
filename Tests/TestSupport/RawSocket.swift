import DurableWire
import Foundation
import SwiftProtobuf

/// A plain TCP socket to a server on loopback, for sending bytes no well-behaved client would. Every blocking call
/// runs on a thread of its own (``offPool(_:)``), so a test waiting for a reply never holds the cooperative pool.
/// Use it from one task at a time.
public final class RawSocket: @unchecked Sendable {
    /// The socket's file descriptor.
    public let fd: Int32

    private init(fd: Int32) { self.fd = fd }

    /// Connects to 127.0.0.1:`port`; reads give up after `readTimeout` without data.
    public static func connect(port: Int, readTimeout: Duration = .seconds(30)) async throws -> RawSocket {
        try await offPool {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard result == 0 else {
                close(fd)
                throw RPCError.unavailable("raw connect to port \(port) failed")
            }
            let seconds = readTimeout.components.seconds
            var timeout = timeval(tv_sec: Int(max(seconds, 1)), tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            return RawSocket(fd: fd)
        }
    }

    deinit { close(fd) }

    /// Writes bytes (all of them, unless the peer has gone).
    public func send(_ bytes: [UInt8]) async {
        await offPool {
            var offset = 0
            while offset < bytes.count {
                let written = bytes[offset...].withUnsafeBytes { write(self.fd, $0.baseAddress, $0.count) }
                if written <= 0 { return }
                offset += written
            }
        }
    }

    /// Closes the sending half (the peer sees end of stream).
    public func shutdownWrite() {
        shutdown(fd, Int32(SHUT_WR))
    }

    /// Ends the connection without any goodbye (the peer sees end of stream in both directions).
    public func disconnect() {
        shutdown(fd, Int32(SHUT_RDWR))
    }

    /// Reads until the peer closes the connection (or no data came for the read timeout).
    public func receiveAll() async -> [UInt8] {
        await receive(minimum: .max)
    }

    /// Reads at least `minimum` bytes (or until the peer closes, or the read timeout).
    public func receive(minimum: Int) async -> [UInt8] {
        await offPool {
            var result: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while result.count < minimum {
                let count = buffer.withUnsafeMutableBytes { read(self.fd, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                if count <= 0 { break }
                result.append(contentsOf: buffer[0..<count])
            }
            return result
        }
    }

    /// A frame as bytes on the wire.
    public static func encode(_ frame: Durable_V1_Frame) throws -> [UInt8] {
        let body: [UInt8] = try frame.serializedBytes()
        let length = UInt32(body.count)
        return [UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)] + body
    }

    /// The first whole frame in `bytes`.
    public static func firstFrame(_ bytes: [UInt8]) -> Durable_V1_Frame? {
        guard bytes.count >= 4 else { return nil }
        let length = Int(bytes[0]) << 24 | Int(bytes[1]) << 16 | Int(bytes[2]) << 8 | Int(bytes[3])
        guard bytes.count >= 4 + length else { return nil }
        return try? Durable_V1_Frame(serializedBytes: Array(bytes[4..<(4 + length)]))
    }
}
