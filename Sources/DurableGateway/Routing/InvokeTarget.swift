import DurableObjects
import DurableWire

/// The routing fields of a serialized `durable.v1.InvokeRequest`, read without decoding the rest of it.
///
/// The gateway needs only the namespace, the object's id and its name to route an invocation; the request itself
/// (method, headers, body) travels on to the node as the caller's bytes. Reading the three fields straight from the
/// encoding spares a decode of the whole message, and its allocations, per call. The node decodes the full message
/// and refuses what does not decode there.
struct InvokeTarget: Equatable {
    /// `namespace_id` (field 1).
    var namespaceID = ""
    /// `object_id` (field 2): empty when the caller sent only a name.
    var objectID: [UInt8] = []
    /// `object_name` (field 3): empty when the caller sent only an id.
    var objectName = ""

    /// Reads the routing fields of a decoded request.
    init(_ message: Durable_V1_InvokeRequest) {
        namespaceID = message.namespaceID
        objectID = Array(message.objectID)
        objectName = message.objectName
    }

    /// Reads the routing fields from the protobuf encoding of an `InvokeRequest`, skipping every other field. As in
    /// protobuf, the last occurrence of a field wins.
    ///
    /// - Throws: ``InvokeTarget/ScanError`` naming what is malformed: a truncated field, a wire type the field
    ///   cannot have, a string that is not UTF-8.
    init(scanning bytes: [UInt8]) throws(ScanError) {
        var index = 0
        while index < bytes.count {
            let tag = try Self.varint(bytes, &index)
            let field = tag >> 3
            let wireType = tag & 7
            guard field > 0 else { throw ScanError("field number 0 at byte \(index)") }
            switch wireType {
            case 0:
                _ = try Self.varint(bytes, &index)
                guard field > 3 else { throw ScanError("field \(field) is not a varint") }
            case 1, 5:
                index += wireType == 1 ? 8 : 4
                guard index <= bytes.count else { throw ScanError("truncated field \(field)") }
                guard field > 3 else { throw ScanError("field \(field) is not a fixed-size number") }
            case 2:
                let length = try Self.varint(bytes, &index)
                guard length <= UInt64(bytes.count - index) else {
                    throw ScanError("field \(field) claims \(length) bytes, \(bytes.count - index) remain")
                }
                let value = bytes[index..<index + Int(length)]
                index += Int(length)
                switch field {
                case 1: namespaceID = try Self.text(value, field: "namespace_id")
                case 2: objectID = Array(value)
                case 3: objectName = try Self.text(value, field: "object_name")
                default: break
                }
            default:
                throw ScanError("wire type \(wireType) of field \(field) is not supported")
            }
        }
    }

    /// Why a request's encoding could not be read.
    struct ScanError: Error, CustomStringConvertible {
        /// What is malformed.
        var description: String
        init(_ description: String) { self.description = description }
    }

    private static func varint(_ bytes: [UInt8], _ index: inout Int) throws(ScanError) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while index < bytes.count, shift < 64 {
            let byte = bytes[index]
            index += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
        throw ScanError("truncated or overlong varint at byte \(index)")
    }

    private static func text(_ bytes: ArraySlice<UInt8>, field: String) throws(ScanError) -> String {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ScanError("\(field) is not valid UTF-8")
        }
        return text
    }

    /// The request as the node gets it: `payload` with the object's id (when the caller sent only a name) and the
    /// slot's epoch appended, encoded as fields 2 and 4 (a later value of a field replaces an earlier one).
    func routed(_ payload: [UInt8], id: DurableObjectId, epoch: UInt64) -> [UInt8] {
        var routed = payload
        routed.reserveCapacity(payload.count + 2 + id.bytes.count + 11)
        if objectID.isEmpty {
            routed.append(0x12)  // Field 2, length-delimited.
            routed.append(UInt8(id.bytes.count))
            routed.append(contentsOf: id.bytes)
        }
        routed.append(0x20)  // Field 4, varint.
        var value = epoch
        while value >= 0x80 {
            routed.append(UInt8(value & 0x7F) | 0x80)
            value >>= 7
        }
        routed.append(UInt8(value))
        return routed
    }
}
