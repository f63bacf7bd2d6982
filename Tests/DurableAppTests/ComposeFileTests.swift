import Foundation
import Testing

@testable import DurableApp

/// No Docker engine runs where the tests run, so the compose file is checked against the command line instead:
/// every service's command must parse, and the topology must hold together.
@Suite("docker-compose.yml")
struct ComposeFileTests {
    /// Service name → its `command:` array.
    func commands() throws -> [String: [String]] {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("docker-compose.yml"), encoding: .utf8)
        var commands: [String: [String]] = [:]
        var service: String?
        for line in text.split(separator: "\n") {
            if line.hasPrefix("  ") && !line.hasPrefix("    ") && line.hasSuffix(":") {
                service = String(line.dropFirst(2).dropLast())
            } else if let service, let range = line.range(of: "command: ") {
                let array = try JSONSerialization.jsonObject(with: Data(line[range.upperBound...].utf8))
                commands[service] = array as? [String]
            }
        }
        return commands
    }

    @Test("a gateway and three nodes whose commands parse, each node joining the gateway under its own name")
    func topology() throws {
        let commands = try commands()
        #expect(Set(commands.keys) == ["gateway", "node1", "node2", "node3"])
        let gatewayArguments = try #require(commands["gateway"])
        #expect(gatewayArguments.first == "gateway")
        let gateway = try GatewayCommand.parse(Array(gatewayArguments.dropFirst()))
        #expect(gateway.host == "0.0.0.0" && gateway.data == "/data")
        #expect(gateway.metricsPort == 9090)
        var nodeIDs: Set<String> = []
        for name in ["node1", "node2", "node3"] {
            let arguments = try #require(commands[name])
            #expect(arguments.first == "node")
            let node = try NodeCommand.parse(Array(arguments.dropFirst()))
            nodeIDs.insert(node.nodeID)
            #expect(node.gateway == "gateway:\(gateway.rpcPort)")
            #expect(node.advertise == "\(name):\(node.port)")
            #expect(node.data == "/data")
            #expect(node.metricsPort == 9091)
        }
        #expect(nodeIDs.count == 3)
    }

    @Test("every service gets the cluster secret from the environment, and the gateway its tokens too")
    func keys() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("docker-compose.yml"), encoding: .utf8)
        var variables: [String: Set<String>] = [:]
        var service: String?
        for line in text.split(separator: "\n") {
            if line.hasPrefix("  ") && !line.hasPrefix("    ") && line.hasSuffix(":") {
                service = String(line.dropFirst(2).dropLast())
            } else if let service, let name = line.split(separator: ":").first,
                name.trimmingCharacters(in: .whitespaces).hasPrefix("DURABLE_")
            {
                // Each value must come from the compose environment, never be written in the file.
                #expect(line.contains("${"), "\(service): \(line)")
                variables[service, default: []].insert(name.trimmingCharacters(in: .whitespaces))
            }
        }
        #expect(variables["gateway"] == ["DURABLE_CLUSTER_SECRET", "DURABLE_ADMIN_TOKEN", "DURABLE_API_TOKEN"])
        for node in ["node1", "node2", "node3"] { #expect(variables[node] == ["DURABLE_CLUSTER_SECRET"]) }
    }
}
