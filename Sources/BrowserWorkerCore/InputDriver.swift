import Glibc
import OpenClawIPC

/// Mouse and keyboard through `Input.dispatch*Event` on one tab.
struct InputDriver {
    let page: PageSession

    /// CDP's modifier bits by key name (`Input.dispatchMouseEvent`, `Input.dispatchKeyEvent`).
    static let modifierBits = ["Alt": 1, "Control": 2, "ControlOrMeta": 2, "Meta": 4, "Shift": 8]

    func mouse(_ type: String, _ point: (Double, Double), button: String = "none", count: Int = 0, modifiers: Int = 0,
               deadline: Deadline) throws(BrowserError) {
        try page.call("Input.dispatchMouseEvent", [
            "type": .string(type), "x": .number(point.0), "y": .number(point.1), "button": .string(button),
            "clickCount": .number(Double(count)), "modifiers": .number(Double(modifiers)),
        ], timeoutMs: max(deadline.remaining, 1))
    }

    func move(_ point: (Double, Double), deadline: Deadline) throws(BrowserError) {
        try mouse("mouseMoved", point, deadline: deadline)
    }

    func click(_ point: (Double, Double), button: String = "left", count: Int = 1, modifiers: Int = 0, deadline: Deadline) throws(BrowserError) {
        try move(point, deadline: deadline)
        for click in 1...count {
            try mouse("mousePressed", point, button: button, count: click, modifiers: modifiers, deadline: deadline)
            try mouse("mouseReleased", point, button: button, count: click, modifiers: modifiers, deadline: deadline)
        }
    }

    func drag(from start: (Double, Double), to end: (Double, Double), deadline: Deadline) throws(BrowserError) {
        try move(start, deadline: deadline)
        try mouse("mousePressed", start, button: "left", count: 1, deadline: deadline)
        for step in 1...5 {
            let fraction = Double(step) / 5
            try mouse("mouseMoved", (start.0 + (end.0 - start.0) * fraction, start.1 + (end.1 - start.1) * fraction), button: "left",
                      deadline: deadline)
        }
        try mouse("mouseReleased", end, button: "left", count: 1, deadline: deadline)
    }

    /// Key names with their DOM code and Windows virtual key code.
    static let namedKeys: [String: (code: String, keyCode: Int, text: String?)] = [
        "Enter": ("Enter", 13, "\r"), "Tab": ("Tab", 9, "\t"), "Escape": ("Escape", 27, nil), "Backspace": ("Backspace", 8, nil),
        "Delete": ("Delete", 46, nil), "ArrowUp": ("ArrowUp", 38, nil), "ArrowDown": ("ArrowDown", 40, nil),
        "ArrowLeft": ("ArrowLeft", 37, nil), "ArrowRight": ("ArrowRight", 39, nil), "Home": ("Home", 36, nil), "End": ("End", 35, nil),
        "PageUp": ("PageUp", 33, nil), "PageDown": ("PageDown", 34, nil), "Space": ("Space", 32, " "), " ": ("Space", 32, " "),
        "Shift": ("ShiftLeft", 16, nil), "Control": ("ControlLeft", 17, nil), "Alt": ("AltLeft", 18, nil), "Meta": ("MetaLeft", 91, nil),
    ]
    /// [newer] aliases, per `+`-separated part, case-insensitive.
    static let aliases = ["esc": "Escape", "return": "Enter", "del": "Delete", "ctrl": "Control", "cmd": "Meta",
                          "controlormeta": "Control", "space": "Space"]

    static func canonical(_ part: String) -> String {
        if let alias = aliases[part.lowercased()] { return alias }
        if let named = namedKeys.keys.first(where: { $0.lowercased() == part.lowercased() }) { return named }
        return part
    }

    static func describe(_ key: String) -> (key: String, code: String, keyCode: Int, text: String?) {
        if let named = namedKeys[key] { return (key == "Space" ? " " : key, named.code, named.keyCode, named.text) }
        if key.count == 1, let scalar = key.unicodeScalars.first {
            let upper = key.uppercased()
            if scalar.properties.isAlphabetic, scalar.isASCII { return (key, "Key\(upper)", Int(upper.unicodeScalars.first!.value), key) }
            if ("0"..."9").contains(key) { return (key, "Digit\(key)", Int(scalar.value), key) }
            return (key, "", 0, key)
        }
        return (key, key, 0, nil)
    }

    func key(_ type: String, _ key: String, modifiers: Int, withText: Bool, deadline: Deadline) throws(BrowserError) {
        let info = Self.describe(key)
        var parameters: [String: JSONValue] = [
            "type": .string(type), "key": .string(info.key), "code": .string(info.code),
            "windowsVirtualKeyCode": .number(Double(info.keyCode)), "modifiers": .number(Double(modifiers)),
        ]
        if withText, let text = info.text, modifiers & ~8 == 0 {
            parameters["text"] = .string(text)
            parameters["unmodifiedText"] = .string(text)
        }
        try page.call("Input.dispatchKeyEvent", parameters, timeoutMs: max(deadline.remaining, 1))
    }

    /// Presses a combination like `Control+a` (modifiers held, then the key, then released).
    func press(_ combination: String, holdMs: Int = 0, deadline: Deadline) throws(BrowserError) {
        let parts = combination.split(separator: "+", omittingEmptySubsequences: false).map { Self.canonical(String($0)) }
        let keys = parts.isEmpty ? [combination] : parts
        var modifiers = 0
        for modifier in keys.dropLast() {
            try key("rawKeyDown", modifier, modifiers: modifiers, withText: false, deadline: deadline)
            modifiers |= Self.modifierBits[modifier] ?? 0
        }
        let main = keys.last ?? combination
        try key("keyDown", main, modifiers: modifiers, withText: true, deadline: deadline)
        if holdMs > 0 { usleep(useconds_t(min(holdMs, 5000)) * 1000) }
        try key("keyUp", main, modifiers: modifiers, withText: false, deadline: deadline)
        for modifier in keys.dropLast().reversed() {
            modifiers &= ~(Self.modifierBits[modifier] ?? 0)
            try key("keyUp", modifier, modifiers: modifiers, withText: false, deadline: deadline)
        }
    }

    func typeCharacter(_ character: String, deadline: Deadline) throws(BrowserError) {
        try key("keyDown", character, modifiers: 0, withText: true, deadline: deadline)
        try key("keyUp", character, modifiers: 0, withText: false, deadline: deadline)
    }
}
