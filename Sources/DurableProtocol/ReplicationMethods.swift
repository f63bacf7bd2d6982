import DurableWire

extension Methods {
    /// Apply a primary's write groups, in order (a standby node, cluster secret).
    public static let nodeApplyGroups = "durable.v1.Node/ApplyGroups"
    /// The primary a standby follows, its term and the last group it applied (a standby node, cluster secret).
    public static let nodeStandbyStatus = "durable.v1.Node/StandbyStatus"
    /// A standby asks a primary to replicate to it (a primary node, cluster secret).
    public static let nodeAttachStandby = "durable.v1.Node/AttachStandby"
}
