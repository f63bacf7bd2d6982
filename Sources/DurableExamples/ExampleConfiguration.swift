extension ExampleApp {
    /// The example app's `durable.toml`: both classes bound at the top level, created by migration `v1`.
    public static let configuration = """
        name = "example-app"

        [durable_objects]
        bindings = [
          { name = "COUNTER", class_name = "Counter" },
          { name = "EXAMPLE", class_name = "DurableObjectExample" },
        ]

        [[migrations]]
        tag = "v1"
        new_classes = ["Counter", "DurableObjectExample"]
        """
}
