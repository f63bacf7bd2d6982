import ArgumentParser
import Logging

/// `--log-level` parses straight into swift-log's level; an unknown name is refused naming the option.
extension Logger.Level: @retroactive ExpressibleByArgument {}
