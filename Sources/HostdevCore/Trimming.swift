extension StringProtocol {
    /// The text without leading and trailing characters that `drop` matches
    /// (whitespace unless told otherwise).
    public func trimming(where drop: (Character) -> Bool = { $0.isWhitespace }) -> String {
        guard let first = firstIndex(where: { !drop($0) }) else { return "" }
        let last = lastIndex(where: { !drop($0) })!
        return String(self[first...last])
    }

    /// The text without trailing characters that `drop` matches.
    public func trimmingEnd(where drop: (Character) -> Bool = { $0.isWhitespace }) -> String {
        guard let last = lastIndex(where: { !drop($0) }) else { return "" }
        return String(self[...last])
    }
}
