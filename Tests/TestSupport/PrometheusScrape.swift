/// One scrape of a Prometheus endpoint, parsed from the text exposition format (version 0.0.4): the samples, by
/// name and labels. Comment lines (`# HELP`, `# TYPE`) are skipped.
public struct PrometheusScrape: Sendable {
    /// One sample line: `name{label="value",...} value`.
    public struct Sample: Sendable, Equatable {
        /// The metric name (with its `_bucket`, `_sum` or `_count` suffix for histograms).
        public var name: String
        /// The labels.
        public var labels: [String: String]
        /// The value.
        public var value: Double
    }

    /// A line that is not a sample.
    public struct ParseError: Error, CustomStringConvertible {
        /// The line.
        public var line: String
        /// What is wrong with it.
        public var problem: String
        /// The line and the problem.
        public var description: String { "cannot parse '\(line)': \(problem)" }
    }

    /// The samples, in the order of the text.
    public let samples: [Sample]

    /// Parses `text`.
    ///
    /// - Throws: ``ParseError`` for a line that is neither a comment, blank, nor a well-formed sample.
    public init(_ text: String) throws {
        samples = try text.split(separator: "\n").compactMap { line -> Sample? in
            let line = String(line)
            if line.isEmpty || line.hasPrefix("#") { return nil }
            return try Self.sample(line)
        }
    }

    /// The sum of the samples named `name` whose labels include `labels` (0 when there is none).
    public func sum(_ name: String, _ labels: [String: String] = [:]) -> Double {
        matching(name, labels).reduce(0) { $0 + $1.value }
    }

    /// The samples named `name` whose labels include `labels`.
    public func matching(_ name: String, _ labels: [String: String] = [:]) -> [Sample] {
        samples.filter { sample in
            sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value }
        }
    }

    /// Whether a sample named `name` is present.
    public func contains(_ name: String) -> Bool { samples.contains { $0.name == name } }

    private static func sample(_ line: String) throws -> Sample {
        var rest = Substring(line)
        let name = rest.prefix { $0.isLetter || $0.isNumber || $0 == "_" || $0 == ":" }
        guard !name.isEmpty else { throw ParseError(line: line, problem: "no metric name") }
        rest = rest.dropFirst(name.count)
        var labels: [String: String] = [:]
        if rest.first == "{" {
            rest = rest.dropFirst()
            while rest.first != "}" {
                let key = rest.prefix { $0 != "=" }
                rest = rest.dropFirst(key.count)
                guard rest.hasPrefix("=\"") else { throw ParseError(line: line, problem: "label without a value") }
                rest = rest.dropFirst(2)
                var value = ""
                while let character = rest.first, character != "\"" {
                    rest = rest.dropFirst()
                    if character == "\\", let escaped = rest.first {
                        rest = rest.dropFirst()
                        value.append(escaped == "n" ? "\n" : escaped)
                    } else {
                        value.append(character)
                    }
                }
                guard rest.first == "\"" else { throw ParseError(line: line, problem: "unterminated label value") }
                rest = rest.dropFirst()
                labels[String(key)] = value
                if rest.first == "," { rest = rest.dropFirst() }
                guard !rest.isEmpty else { throw ParseError(line: line, problem: "unterminated label set") }
            }
            rest = rest.dropFirst()
        }
        let fields = rest.split(separator: " ")
        guard let text = fields.first, fields.count <= 2 else {
            throw ParseError(line: line, problem: "expected a value and an optional timestamp")
        }
        let value: Double? =
            switch text {
            case "+Inf": .infinity
            case "-Inf": -.infinity
            default: Double(text)
            }
        guard let value else { throw ParseError(line: line, problem: "'\(text)' is not a number") }
        return Sample(name: String(name), labels: labels, value: value)
    }
}
