// The DurableWire module; see DESIGN.md. Filled in by the issues that build it.
