// The protocol's method names and wire ↔ model conversions (`Methods`, `Request(wire:)`, …) come with the client.
@_exported import DurableProtocol

// The keys a client proves (`DurableClient(credentials:)`) are DurableWire types, and apps depend on the
// DurableClient product, not on DurableWire: re-export them so that `import DurableClient` is enough.
@_exported import struct DurableWire.RPCKey
@_exported import struct DurableWire.RPCKeyError
@_exported import enum DurableWire.RPCRole
