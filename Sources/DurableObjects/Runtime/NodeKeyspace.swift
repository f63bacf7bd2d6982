/// Every kind of row a node keeps in its database's default column family, by key prefix, in one place. The objects'
/// own data lives in one column family per namespace; these rows are the node's bookkeeping beside it. No prefix
/// begins another, so a scan of one kind never meets a row of another.
public enum NodeKeyspace {
    /// `alarm/<namespace id>/<object id hex>` → an object's alarm time (milliseconds since 1970, 8 bytes big-endian).
    public static let alarm = "alarm/"
    /// `name/<namespace id>/<object id hex>` → the name an object's id was derived from.
    public static let name = "name/"
    /// `ws/<namespace id>/<object id hex>/<socket id>` → an open WebSocket's tags, attachment and order.
    public static let socket = "ws/"
    /// `wsauto/<namespace id>/<object id hex>` → an object's automatic WebSocket reply.
    public static let autoResponse = "wsauto/"
    /// `node/…` → the node's own metadata: its database identity, the registry it joined, the namespaces and
    /// bindings a registry defined, its slots' placement epochs, the id secrets of the namespaces it serves alone.
    public static let node = "node/"
    /// `test-runtime/…` → what `DurableTestRuntime` keeps (the id secrets of its namespaces).
    public static let testRuntime = "test-runtime/"

    /// Every prefix.
    public static let all = [alarm, name, socket, autoResponse, node, testRuntime]
}
