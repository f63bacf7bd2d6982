import DurableObjects
import Foundation

/// How the operator commands show stored values: decoded from the storage API's value coding where possible,
/// else as base64 of the raw bytes.
struct StoredValueText {
    /// The type shown beside the value: `integer`, `double`, `boolean`, `string`, `bytes`, `json`, or `raw` for
    /// bytes that are not in the value coding.
    var type: String
    /// The value as one line of text: numbers and booleans as written, strings quoted as JSON strings, JSON values
    /// as stored, bytes and raw values as base64.
    var text: String
    /// The value for a JSON document.
    var json: Any

    /// Decodes `bytes` stored under `key`.
    init(_ bytes: [UInt8], key: String) {
        guard let value = try? StorageValue(storedBytes: bytes, key: key) else {
            let base64 = Data(bytes).base64EncodedString()
            self.init(type: "raw", text: "base64:" + base64, json: base64)
            return
        }
        switch value {
        case .integer(let integer):
            self.init(type: "integer", text: "\(integer)", json: NSNumber(value: integer))
        case .double(let double):
            self.init(type: "double", text: "\(double)", json: double.isFinite ? NSNumber(value: double) : "\(double)")
        case .boolean(let boolean):
            self.init(type: "boolean", text: "\(boolean)", json: NSNumber(value: boolean))
        case .string(let string):
            self.init(type: "string", text: Self.quoted(string), json: string)
        case .bytes(let raw):
            let base64 = Data(raw).base64EncodedString()
            self.init(type: "bytes", text: "base64:" + base64, json: base64)
        case .json(let text):
            let parsed = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
            self.init(type: "json", text: text, json: parsed ?? text)
        }
    }

    private init(type: String, text: String, json: Any) {
        self.type = type
        self.text = text
        self.json = json
    }

    /// `string` as a JSON string literal.
    static func quoted(_ string: String) -> String {
        guard let data = try? JSONSerialization.data(withJSONObject: string, options: [.fragmentsAllowed]) else {
            return string
        }
        return String(decoding: data, as: UTF8.self)
    }
}

/// Prints rows as aligned columns under a header; the last column is not padded.
func printTable(_ header: [String], _ rows: [[String]]) {
    let widths = header.indices.map { column in
        ([header[column]] + rows.map { $0[column] }).map(\.count).max() ?? 0
    }
    for row in [header] + rows {
        let cells = row.enumerated().map { column, cell in
            column == row.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
        }
        print(cells.joined(separator: "  "))
    }
}
