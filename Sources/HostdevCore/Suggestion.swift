/// "did you mean 'win11'?": the closest of some known names to a name that
/// matched none of them, when it is close enough to be a typo.
public enum Suggestion {
    /// Levenshtein distance, ignoring case.
    public static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.lowercased())
        let b = Array(b.lowercased())
        guard !a.isEmpty else { return b.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in stride(from: 1, through: b.count, by: 1) {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }

    /// The known name nearest to `name` within `maxDistance` edits (case
    /// does not count), or nil. Ties go to the first in sorted order, so the
    /// answer does not depend on the order `known` comes in. Names over
    /// `longest` characters get no suggestion: the distance is quadratic.
    public static func closest(to name: String, among known: some Sequence<String>, maxDistance: Int = 2, longest: Int = 64) -> String? {
        guard name.utf8.count <= longest else { return nil }
        var best: (name: String, distance: Int)?
        for candidate in known where candidate != name && candidate.utf8.count <= longest {
            let distance = editDistance(candidate, name)
            guard distance <= maxDistance else { continue }
            if best == nil || distance < best!.distance || (distance == best!.distance && candidate < best!.name) {
                best = (candidate, distance)
            }
        }
        return best?.name
    }

    /// `; did you mean 'win11'?`, or nothing.
    public static func hint(for name: String, among known: some Sequence<String>) -> String {
        closest(to: name, among: known).map { "; did you mean '\($0)'?" } ?? ""
    }
}
