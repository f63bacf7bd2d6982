import Foundation
import Testing

@testable import DurableApp

/// No Docker engine runs where the tests run, so the compose file is checked against the command line instead:
/// every service's command must parse, and the topology must hold together.
@Suite("docker-compose.yml")
struct ComposeFileTests {
    /// The services that run `durable gateway`, the first one named `gateway`.
    static let gatewayServices = ["gateway", "gateway2"]
    /// The services that run `durable node`.
    static let nodeServices = ["node1", "node2", "node3"]
    /// The etcd member's client URL, as the gateways and nodes reach it on the compose network.
    static let etcdURL = "http://etcd:2379"

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

    /// The value that follows `flag` in `arguments`, if any.
    func value(of flag: String, in arguments: [String]) -> String? {
        guard let index = arguments.firstIndex(of: flag), arguments.indices.contains(index + 1) else { return nil }
        return arguments[index + 1]
    }

    /// Service `name`'s `durable gateway` command, parsed.
    func parsedGateway(_ name: String, in commands: [String: [String]]) throws -> GatewayCommand {
        let arguments = try #require(commands[name])
        #expect(arguments.first == "gateway", "\(name)")
        return try GatewayCommand.parse(Array(arguments.dropFirst()))
    }

    @Test("an etcd member, two gateways and three nodes")
    func services() throws {
        let commands = try commands()
        #expect(Set(commands.keys) == Set(["etcd"] + Self.gatewayServices + Self.nodeServices))
    }

    @Test("the etcd member serves clients on port 2379 and advertises the URL the gateways and nodes use")
    func etcdMember() throws {
        // Not a durable command: etcd's own, so it is not parsed as one.
        let arguments = try #require(try commands()["etcd"])
        #expect(arguments.first?.hasSuffix("etcd") == true)
        let listen = try #require(value(of: "--listen-client-urls", in: arguments))
        #expect(
            listen.split(separator: ",").contains { URL(string: String($0))?.port == 2379 },
            "etcd listens for clients on port 2379: \(listen)")
        #expect(value(of: "--advertise-client-urls", in: arguments) == Self.etcdURL)
    }

    @Test("both gateways keep the cluster in etcd and advertise their service name and RPC port")
    func gatewaysOnEtcd() throws {
        let commands = try commands()
        var rpcPorts: Set<Int> = []
        var httpPorts: Set<Int> = []
        for name in Self.gatewayServices {
            let gateway = try parsedGateway(name, in: commands)
            #expect(gateway.host == "0.0.0.0" && gateway.data == "/data", "\(name)")
            #expect(gateway.metricsPort == 9090, "\(name)")
            #expect(gateway.etcd == Self.etcdURL, "\(name)")
            #expect(gateway.advertise == "\(name):\(gateway.rpcPort)")
            rpcPorts.insert(gateway.rpcPort)
            httpPorts.insert(gateway.port)
        }
        // Both gateways publish their ports on the host, so no two share one.
        #expect(rpcPorts.count == Self.gatewayServices.count)
        #expect(httpPorts.count == Self.gatewayServices.count)
    }

    @Test("each node holds its lease in etcd, joins both gateways and advertises its own name")
    func topology() throws {
        let commands = try commands()
        var gatewayAddresses: [String] = []
        for name in Self.gatewayServices {
            let rpcPort = try parsedGateway(name, in: commands).rpcPort
            gatewayAddresses.append("\(name):\(rpcPort)")
        }
        #expect(gatewayAddresses == ["gateway:7070", "gateway2:7071"])
        var nodeIDs: Set<String> = []
        for name in Self.nodeServices {
            let arguments = try #require(commands[name])
            #expect(arguments.first == "node", "\(name)")
            let node = try NodeCommand.parse(Array(arguments.dropFirst()))
            nodeIDs.insert(node.nodeID)
            #expect(node.etcd == Self.etcdURL, "\(name)")
            #expect(node.gateway == gatewayAddresses.joined(separator: ","), "\(name)")
            #expect(node.advertise == "\(name):\(node.port)")
            #expect(node.data == "/data", "\(name)")
            #expect(node.metricsPort == 9091, "\(name)")
        }
        #expect(nodeIDs.count == Self.nodeServices.count)
    }

    @Test("every service gets the cluster secret from the environment, and the gateways their tokens too")
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
        for gateway in Self.gatewayServices {
            #expect(
                variables[gateway] == ["DURABLE_CLUSTER_SECRET", "DURABLE_ADMIN_TOKEN", "DURABLE_API_TOKEN"],
                "\(gateway)")
        }
        for node in Self.nodeServices { #expect(variables[node] == ["DURABLE_CLUSTER_SECRET"], "\(node)") }
        // etcd needs none of the cluster's keys.
        #expect(variables["etcd"] == nil)
    }
}
