import DurableWire

extension Methods {
    /// The objects of a binding's namespace, from every node (gateway, admin token).
    public static let adminListObjects = "durable.v1.Admin/ListObjects"
    /// One object's keys and values (gateway, admin token).
    public static let adminListStorage = "durable.v1.Admin/ListStorage"
    /// One value of one object (gateway, admin token).
    public static let adminGetStorage = "durable.v1.Admin/GetStorage"
    /// One step of a backup: plan, a node's checkpoint, the gateway's (gateway, admin token).
    public static let adminBackup = "durable.v1.Admin/Backup"
    /// The cluster's gateways, nodes (live or dead, their leases, slots and objects) and etcd members (gateway,
    /// admin token).
    public static let adminClusterStatus = "durable.v1.Admin/ClusterStatus"
    /// Every assigned slot with its owner, epoch, objects and bytes, and totals per node (gateway, admin token).
    public static let adminListSlots = "durable.v1.Admin/ListSlots"
    /// Move a slot, with its data, to another node (gateway, admin token).
    public static let adminMoveSlot = "durable.v1.Admin/MoveSlot"
    /// Move slots from the most to the least loaded nodes until each owns its share, streaming each move
    /// (gateway, admin token).
    public static let adminRebalance = "durable.v1.Admin/Rebalance"
    /// The slots this node holds data of, with their objects and bytes.
    public static let nodeSlotUsage = "durable.v1.Node/SlotUsage"
    /// Every row of a slot the node was retired from, streamed, then its summary (slot moves).
    public static let nodeExportSlot = "durable.v1.Node/ExportSlot"
    /// Copy a slot from its old owner and check the copy (slot moves).
    public static let nodePullSlot = "durable.v1.Node/PullSlot"
    /// Delete the copy of a slot that moved to another node (slot moves).
    public static let nodeDeleteSlot = "durable.v1.Node/DeleteSlot"
    /// The objects of a namespace this node holds data of.
    public static let nodeListObjects = "durable.v1.Node/ListObjects"
    /// One object's keys and values, read from the node's database.
    public static let nodeListStorage = "durable.v1.Node/ListStorage"
    /// One value of one object, read from the node's database.
    public static let nodeGetStorage = "durable.v1.Node/GetStorage"
    /// Write a checkpoint of the node's database.
    public static let nodeCheckpoint = "durable.v1.Node/Checkpoint"

    /// The prefix of the gateway's operator methods, which take the admin token.
    public static let adminPrefix = "durable.v1.Admin/"
}

extension Methods {
    /// Who may call `method` at a gateway: publishing and the operator methods (`durable.v1.Admin/…`) take an admin
    /// token, what nodes send takes the cluster secret, and every other method any key (methods the gateway does
    /// not serve are then answered `UNIMPLEMENTED`). A node lets only the cluster secret in.
    public static func rolesAtGateway(_ method: String) -> Set<RPCRole> {
        switch method {
        case publish: [.admin]
        case let admin where admin.hasPrefix(adminPrefix): [.admin]
        case registerNode, webSocketSend: [.cluster]
        default: [.client, .admin, .cluster]
        }
    }
}
