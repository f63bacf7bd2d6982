import DurableObjects

/// The example app: its object classes and their default bindings.
public enum ExampleApp {
    /// The classes the example app provides.
    public static let classes: [DurableObjectClass] = [
        DurableObjectClass(Counter.self),
        DurableObjectClass(DurableObjectExample.self),
    ]

    /// Binding name → class name.
    public static let bindings: [String: String] = [
        "COUNTER": "Counter",
        "EXAMPLE": "DurableObjectExample",
    ]
}
