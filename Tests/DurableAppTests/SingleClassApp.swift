import DurableObjects

/// The configuration of script `script`: one class, bound as `binding`, created by migration `v1`.
func singleClassConfiguration(script: String, binding: String, className: String) -> String {
    """
    name = "\(script)"
    [durable_objects]
    bindings = [ { name = "\(binding)", class_name = "\(className)" } ]
    [[migrations]]
    tag = "v1"
    new_classes = ["\(className)"]
    """
}

/// Sends `PREFIX/NAME/PATH` to the object `NAME` of `namespace`, at `/PATH`; anything else is `404`.
func forwardByName(_ request: Request, after prefix: String, to namespace: DurableObjectNamespace) async throws
    -> Response
{
    let rest = request.path.dropFirst(prefix.count)
    guard request.path.hasPrefix(prefix), let slash = rest.firstIndex(of: "/") else {
        return Response("Not found", status: .notFound)
    }
    var forwarded = request
    forwarded.head.path = String(rest[slash...])
    return try await namespace.getByName(String(rest[..<slash])).fetch(forwarded)
}
