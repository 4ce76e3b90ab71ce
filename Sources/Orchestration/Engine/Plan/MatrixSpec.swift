/// A step's `"matrix"` as written, and its expansion into combinations (GitHub Actions' rules).
///
/// `{"os": ["linux", "mac"], "v": [1, 2], "include": [{...}], "exclude": [{...}]}`:
///
/// 1. The value lists make every combination, the last key varying fastest.
/// 2. `exclude` removes each combination that has all of an entry's pairs.
/// 3. Each `include` entry, in order, is added to every remaining original combination whose
///    values for the matrix's own keys do not differ from the entry's (its other keys are added,
///    overwriting what an earlier entry added); an entry that fits none becomes a new combination.
///
/// Values are strings, numbers or booleans, each taken as its text (`1`, `true`), so `"1"` and `1`
/// are the same value.
struct MatrixSpec {
    /// What is wrong, where (the plan loader adds the file).
    struct Problem: Error {
        var location: SourceLocation
        var path: String
        var message: String
    }

    /// A key with its value list.
    struct Key {
        var name: String
        var values: [String]
    }

    /// One `include` or `exclude` entry: its pairs in the order written.
    struct Entry {
        var pairs: [MatrixInstance.Value]
        var location: SourceLocation
    }

    /// One combination of the expansion.
    struct Combination {
        /// Its values, for `${matrix.KEY}` and the reports.
        var instance: MatrixInstance
        /// What its id adds to the step's id: `.linux.1`.
        var idSuffix: String
        /// Every key of the matrix (``MatrixSpec/allKeys``), some perhaps without a value here.
        var keys: [String]
    }

    /// The keys with value lists, in the order written.
    var keys: [Key]
    var include: [Entry]
    var exclude: [Entry]
    /// Every key a combination can have: ``keys``, then keys only `include` names.
    var allKeys: [String]
    var location: SourceLocation

    /// Reads a `"matrix"` value at `path` (`steps[3].matrix`).
    static func parse(_ node: JSONNode, path: String) throws(Problem) -> MatrixSpec {
        guard case .object(let object) = node.kind else {
            throw Problem(location: node.location, path: path,
                          message: "must be an object of KEY: [values] lists (with optional include and exclude), not \(node.typeName)")
        }
        var spec = MatrixSpec(keys: [], include: [], exclude: [], allKeys: [], location: node.location)
        var includeNode: JSONNode?
        var excludeNode: JSONNode?
        for member in object.members {
            let at = "\(path).\(member.key)"
            switch member.key {
            case "include": includeNode = member.value
            case "exclude": excludeNode = member.value
            default:
                try checkKey(member.key, member.keyLocation, at)
                guard case .array(let elements) = member.value.kind else {
                    throw Problem(location: member.value.location, path: at,
                                  message: "must be a list of values (strings, numbers or booleans), not \(member.value.typeName)")
                }
                guard !elements.isEmpty else {
                    throw Problem(location: member.value.location, path: at,
                                  message: "an empty value list would leave the matrix without combinations")
                }
                var values: [String] = []
                var seen: Set<String> = []
                for (i, element) in elements.enumerated() {
                    let value = try scalar(element, "\(at)[\(i)]")
                    guard seen.insert(value).inserted else {
                        throw Problem(location: element.location, path: "\(at)[\(i)]",
                                      message: "the value \(value) is listed twice (numbers and booleans count as their text)")
                    }
                    values.append(value)
                }
                spec.keys.append(Key(name: member.key, values: values))
            }
        }
        spec.allKeys = spec.keys.map(\.name)
        if let includeNode {
            spec.include = try entries(includeNode, "\(path).include")
            for entry in spec.include {
                for pair in entry.pairs where !spec.allKeys.contains(pair.key) { spec.allKeys.append(pair.key) }
            }
        }
        if let excludeNode {
            spec.exclude = try entries(excludeNode, "\(path).exclude")
            for (i, entry) in spec.exclude.enumerated() {
                for pair in entry.pairs {
                    let at = "\(path).exclude[\(i)].\(pair.key)"
                    guard let key = spec.keys.first(where: { $0.name == pair.key }) else {
                        let known = spec.keys.isEmpty ? "the matrix has no value lists"
                            : "its keys are \(spec.keys.map(\.name).joined(separator: ", "))"
                        throw Problem(location: entry.location, path: at,
                                      message: "exclude names \"\(pair.key)\", which is not a key of the matrix (\(known))")
                    }
                    guard key.values.contains(pair.value) else {
                        throw Problem(location: entry.location, path: at,
                                      message: "exclude names \(pair.key) = \(pair.value), which is not among its values "
                                          + "(\(key.values.joined(separator: ", ")))")
                    }
                }
            }
        }
        guard !spec.keys.isEmpty || !spec.include.isEmpty else {
            throw Problem(location: node.location, path: path,
                          message: "needs at least one KEY: [values] list or an include entry")
        }
        return spec
    }

    /// The number of combinations before `exclude` and `include`, nil past `Int.max`.
    var product: Int? {
        var product = 1
        for key in keys {
            let (result, overflow) = product.multipliedReportingOverflow(by: key.values.count)
            if overflow { return nil }
            product = result
        }
        return keys.isEmpty ? 0 : product
    }

    /// `1000 × 1000 × 1000`.
    var sizes: String { keys.map { String($0.values.count) }.joined(separator: " × ") }

    /// The most combinations the expansion can have: ``product`` plus one per `include` entry.
    var upperBound: Int? {
        guard let product else { return nil }
        let (result, overflow) = product.addingReportingOverflow(include.count)
        return overflow ? nil : result
    }

    /// Every combination, in order: the product's (minus excluded ones, plus what `include` adds
    /// to them), then the new combinations `include` made.
    /// - Precondition: ``upperBound`` is known; the caller has checked it against the step limit
    ///   (this materializes that many combinations).
    func expand(stepID: String) -> [Combination] {
        let original = Dictionary(uniqueKeysWithValues: keys.enumerated().map { ($1.name, $0) })
        let excluded = exclude.map { entry in entry.pairs.map { (original[$0.key]!, $0.value) } }
        var base: [[String]] = []
        if !keys.isEmpty {
            var digits = [Int](repeating: 0, count: keys.count)
            outer: while true {
                let values = digits.enumerated().map { keys[$0.offset].values[$0.element] }
                if !excluded.contains(where: { entry in entry.allSatisfy { values[$0.0] == $0.1 } }) { base.append(values) }
                var position = keys.count - 1
                while position >= 0 {
                    digits[position] += 1
                    if digits[position] < keys[position].values.count { continue outer }
                    digits[position] = 0
                    position -= 1
                }
                break
            }
        }
        var added = [[String: String]](repeating: [:], count: base.count)
        var new: [[String: String]] = []
        for entry in include {
            var fitted = false
            for (index, values) in base.enumerated() {
                let fits = entry.pairs.allSatisfy { pair in original[pair.key].map { values[$0] == pair.value } ?? true }
                guard fits else { continue }
                fitted = true
                for pair in entry.pairs where original[pair.key] == nil { added[index][pair.key] = pair.value }
            }
            if !fitted { new.append(Dictionary(entry.pairs.map { ($0.key, $0.value) }, uniquingKeysWith: { $1 })) }
        }
        var result: [Combination] = []
        result.reserveCapacity(base.count + new.count)
        for (index, values) in base.enumerated() {
            var pairs = zip(keys, values).map { MatrixInstance.Value(key: $0.name, value: $1) }
            for key in allKeys.dropFirst(keys.count) {
                if let value = added[index][key] { pairs.append(MatrixInstance.Value(key: key, value: value)) }
            }
            result.append(Combination(instance: MatrixInstance(step: stepID, values: pairs),
                                      idSuffix: Self.idSuffix(values), keys: allKeys))
        }
        for combination in new {
            let pairs = allKeys.compactMap { key in combination[key].map { MatrixInstance.Value(key: key, value: $0) } }
            result.append(Combination(instance: MatrixInstance(step: stepID, values: pairs),
                                      idSuffix: Self.idSuffix(pairs.map(\.value)), keys: allKeys))
        }
        return result
    }

    /// `.linux.1`: each value with every character outside `[A-Za-z0-9_.-]` as `_` (an empty
    /// value as `_`).
    static func idSuffix(_ values: [String]) -> String {
        var out = ""
        for value in values {
            out += "."
            if value.isEmpty { out += "_" }
            for byte in value.utf8 {
                let allowed = (byte >= 0x30 && byte <= 0x39) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x7A)
                    || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-")
                // A multi-byte character becomes one `_` (its continuation bytes add nothing).
                if allowed { out.unicodeScalars.append(Unicode.Scalar(byte)) } else if byte & 0xC0 != 0x80 { out += "_" }
            }
        }
        return out
    }

    private static func checkKey(_ key: String, _ location: SourceLocation, _ path: String) throws(Problem) {
        guard VariableSubstitution.isValidName(key) else {
            throw Problem(location: location, path: path,
                          message: "\"\(key)\" is not a valid matrix key (letters, digits and _, not starting with a digit)")
        }
    }

    /// A value's text: a string as it is, a number as written, a boolean as `true`/`false`.
    private static func scalar(_ node: JSONNode, _ path: String) throws(Problem) -> String {
        switch node.kind {
        case .string(let text): return text
        case .number(let number): return number.text
        case .bool(let value): return value ? "true" : "false"
        default:
            throw Problem(location: node.location, path: path,
                          message: "must be a string, number or boolean, not \(node.typeName)")
        }
    }

    /// An `include` or `exclude` list: non-empty objects of scalars.
    private static func entries(_ node: JSONNode, _ path: String) throws(Problem) -> [Entry] {
        guard case .array(let elements) = node.kind else {
            throw Problem(location: node.location, path: path, message: "must be a list of objects, not \(node.typeName)")
        }
        var entries: [Entry] = []
        for (i, element) in elements.enumerated() {
            let at = "\(path)[\(i)]"
            guard case .object(let object) = element.kind else {
                throw Problem(location: element.location, path: at,
                              message: "must be an object of KEY: value pairs, not \(element.typeName)")
            }
            guard !object.isEmpty else {
                throw Problem(location: element.location, path: at, message: "an empty entry matches every combination; remove it")
            }
            var pairs: [MatrixInstance.Value] = []
            for member in object.members {
                guard member.key != "include" && member.key != "exclude" else {
                    throw Problem(location: member.keyLocation, path: "\(at).\(member.key)",
                                  message: "\"\(member.key)\" cannot be a matrix key")
                }
                try checkKey(member.key, member.keyLocation, "\(at).\(member.key)")
                pairs.append(MatrixInstance.Value(key: member.key, value: try scalar(member.value, "\(at).\(member.key)")))
            }
            entries.append(Entry(pairs: pairs, location: element.location))
        }
        return entries
    }
}

/// `${matrix.KEY}` references (a pass before variable substitution).
enum MatrixReferences {
    /// Why a reference could not be replaced.
    enum Failure: Error {
        /// `${matrix.KEY}` where the step has no value for KEY (or no matrix: `matrix` nil).
        case unknownKey(String)
    }

    /// Replaces every `${matrix.KEY}` in `text` by the combination's value, keeping the rest
    /// (`$$`, `${NAME}`, other `$`) for variable substitution.
    /// - Parameter escaping: double every `$` of an inserted value, so that the variable pass
    ///   that follows turns it back into one `$` and never expands it (the value arrives
    ///   verbatim); false where no variable pass follows (`name`).
    static func substitute(_ text: String, matrix: MatrixInstance?, escaping: Bool) throws(Failure) -> String {
        let bytes = Array(text.utf8)
        guard bytes.contains(UInt8(ascii: "$")) else { return text }
        let prefix = Array("${matrix.".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "$"), i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "$") {
                // A literal `$` for the variable pass: copied as it is, never the start of a reference.
                out += [bytes[i], bytes[i + 1]]
                i += 2
            } else if bytes[i] == UInt8(ascii: "$"), bytes[i...].starts(with: prefix),
                      let close = bytes[(i + prefix.count)...].firstIndex(of: UInt8(ascii: "}")) {
                let key = String(decoding: bytes[(i + prefix.count)..<close], as: UTF8.self)
                guard let value = matrix?[key] else { throw .unknownKey(key) }
                for byte in value.utf8 {
                    out.append(byte)
                    if escaping && byte == UInt8(ascii: "$") { out.append(byte) }
                }
                i = close + 1
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
