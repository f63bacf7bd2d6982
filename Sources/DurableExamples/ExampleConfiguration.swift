extension ExampleApp {
    /// The example app's `durable.toml`: every class bound at the top level; `v1` created the documentation's two
    /// examples, `v2` the chat room and its rate limiter,
    /// `v3` the broadcast room of the load generator, `v4` the register of the fault harness.
    public static let configuration = """
        name = "example-app"

        [durable_objects]
        bindings = [
          { name = "COUNTER", class_name = "Counter" },
          { name = "EXAMPLE", class_name = "DurableObjectExample" },
          { name = "ROOMS", class_name = "ChatRoom" },
          { name = "LIMITERS", class_name = "RateLimiter" },
          { name = "BROADCAST", class_name = "BroadcastRoom" },
          { name = "REGISTERS", class_name = "Register" },
        ]

        [[migrations]]
        tag = "v1"
        new_classes = ["Counter", "DurableObjectExample"]

        [[migrations]]
        tag = "v2"
        new_classes = ["ChatRoom", "RateLimiter"]

        [[migrations]]
        tag = "v3"
        new_classes = ["BroadcastRoom"]

        [[migrations]]
        tag = "v4"
        new_classes = ["Register"]
        """
}
