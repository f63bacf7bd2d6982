import DurableGateway
import Testing

@Suite("Who may call the gateway's methods")
struct GatewayRolesTests {
    @Test("the operator methods take the admin token only: not an API token, not the cluster secret")
    func adminOnly() {
        let methods = ["ListObjects", "ListStorage", "GetStorage", "Backup"].map { "durable.v1.Admin/" + $0 }
        for method in methods {
            #expect(Gateway.roles(allowedToCall: method) == [.admin], "\(method)")
        }
        #expect(Gateway.roles(allowedToCall: "durable.v1.Objects/Invoke") == [.client, .admin, .cluster])
    }
}
