import Foundation
import TOMLKit

/// Reads `durable.toml`.
public enum ConfigurationParser {
    /// Reads and parses the file at `path`.
    ///
    /// - Throws: ``ConfigurationError`` naming the file when it cannot be read or is not valid.
    public static func load(path: String) throws -> AppConfiguration {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigurationError(
                file: path, key: "", message: "cannot read the file: \(error.localizedDescription)")
        }
        return try parse(text, file: path)
    }

    /// Parses configuration text; `file` names it in errors.
    ///
    /// - Throws: ``ConfigurationError`` naming the key and the problem (a TOML syntax error names the line and
    ///   column).
    public static func parse(_ text: String, file: String = "durable.toml") throws -> AppConfiguration {
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ConfigurationError(
                file: file, key: "",
                message:
                    "not valid TOML at line \(error.source.begin.line), column \(error.source.begin.column): \(error.description)"
            )
        } catch {
            throw ConfigurationError(file: file, key: "", message: "not valid TOML: \(error)")
        }
        let reader = Reader(file: file)
        guard let name = try reader.string(table["name"], "name") else {
            throw reader.error("name", "missing: the app needs a name (name = \"my-app\")")
        }
        guard !name.isEmpty else { throw reader.error("name", "must not be empty") }

        let bindings = try reader.bindings(table["durable_objects"], "durable_objects")
        var environments: [String: EnvironmentConfiguration] = [:]
        if let value = table["env"] {
            guard let envTable = value.table else { throw reader.error("env", "must be a table of environments") }
            for environment in envTable.keys {
                guard let settings = envTable[environment]?.table else {
                    throw reader.error("env.\(environment)", "must be a table")
                }
                var configuration = EnvironmentConfiguration(
                    bindings: try reader.bindings(settings["durable_objects"], "env.\(environment).durable_objects"))
                configuration.vars = try reader.vars(settings["vars"], "env.\(environment).vars")
                environments[environment] = configuration
            }
        }
        let migrations = try reader.migrations(table["migrations"])
        return AppConfiguration(
            name: name, bindings: bindings, environments: environments, migrations: migrations,
            vars: try reader.vars(table["vars"], "vars"))
    }
}

/// Walks a parsed table, turning every type or shape problem into an error that names the key.
private struct Reader {
    let file: String

    func error(_ key: String, _ message: String) -> ConfigurationError {
        ConfigurationError(file: file, key: key, message: message)
    }

    func string(_ value: (any TOMLValueConvertible)?, _ key: String) throws -> String? {
        guard let value else { return nil }
        guard let string = value.string else { throw error(key, "must be a string, not \(value.type)") }
        return string
    }

    func strings(_ value: (any TOMLValueConvertible)?, _ key: String) throws -> [String] {
        guard let value else { return [] }
        guard let array = value.array else { throw error(key, "must be an array of strings, not \(value.type)") }
        return try array.enumerated().map { index, element in
            guard let string = element.string else { throw error("\(key)[\(index)]", "must be a string") }
            return string
        }
    }

    func tables(_ value: (any TOMLValueConvertible)?, _ key: String) throws -> [TOMLTable] {
        guard let value else { return [] }
        guard let array = value.array else { throw error(key, "must be an array of tables, not \(value.type)") }
        return try array.enumerated().map { index, element in
            guard let table = element.table else { throw error("\(key)[\(index)]", "must be a table ({ … })") }
            return table
        }
    }

    func required(_ table: TOMLTable, _ field: String, _ key: String) throws -> String {
        guard let value = try string(table[field], "\(key).\(field)"), !value.isEmpty else {
            throw error("\(key).\(field)", "missing: required")
        }
        return value
    }

    func bindings(_ value: (any TOMLValueConvertible)?, _ key: String) throws -> [BindingConfiguration] {
        guard let value else { return [] }
        guard let section = value.table else { throw error(key, "must be a table") }
        var seen = Set<String>()
        return try tables(section["bindings"], "\(key).bindings").enumerated().map { index, table in
            let path = "\(key).bindings[\(index)]"
            let name = try required(table, "name", path)
            guard seen.insert(name).inserted else { throw error("\(path).name", "binding '\(name)' is declared twice") }
            return BindingConfiguration(
                name: name, className: try required(table, "class_name", path),
                scriptName: try string(table["script_name"], "\(path).script_name"))
        }
    }

    /// `[vars]`: names to strings; numbers and booleans are taken as their text.
    func vars(_ value: (any TOMLValueConvertible)?, _ key: String) throws -> [String: String] {
        guard let value else { return [:] }
        guard let table = value.table else { throw error(key, "must be a table of name = value") }
        var vars: [String: String] = [:]
        for name in table.keys {
            let item = table[name]!
            if let string = item.string {
                vars[name] = string
            } else if let int = item.int {
                vars[name] = String(int)
            } else if let double = item.double {
                vars[name] = String(double)
            } else if let bool = item.bool {
                vars[name] = String(bool)
            } else {
                throw error("\(key).\(name)", "must be a string, a number or a boolean, not \(item.type)")
            }
        }
        return vars
    }

    func migrations(_ value: (any TOMLValueConvertible)?) throws -> [Migration] {
        var tags = Set<String>()
        return try tables(value, "migrations").enumerated().map { index, table in
            let path = "migrations[\(index)]"
            let tag = try required(table, "tag", path)
            guard tags.insert(tag).inserted else {
                throw error("\(path).tag", "tag '\(tag)' is used twice; tags must be unique")
            }
            let renames = try tables(table["renamed_classes"], "\(path).renamed_classes").enumerated().map {
                item, rename in
                let renamePath = "\(path).renamed_classes[\(item)]"
                return Migration.Rename(
                    from: try required(rename, "from", renamePath), to: try required(rename, "to", renamePath))
            }
            let transfers = try tables(table["transferred_classes"], "\(path).transferred_classes").enumerated().map {
                item, transfer in
                let transferPath = "\(path).transferred_classes[\(item)]"
                return Migration.Transfer(
                    from: try required(transfer, "from", transferPath),
                    fromScript: try required(transfer, "from_script", transferPath),
                    to: try required(transfer, "to", transferPath))
            }
            return Migration(
                tag: tag, newClasses: try strings(table["new_classes"], "\(path).new_classes"), renamedClasses: renames,
                deletedClasses: try strings(table["deleted_classes"], "\(path).deleted_classes"),
                transferredClasses: transfers)
        }
    }
}
