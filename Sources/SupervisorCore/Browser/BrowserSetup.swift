import Glibc
import OpenClawIPC

/// The BrowserWorker's configuration from `openclaw.json` `browser.*` (`browser.md` §3.1, §4.2).
public enum BrowserSetup {
    /// Chromium-family binaries, most specific first. Debian's `/usr/bin/chromium` is a shell
    /// wrapper: the binary beside its helpers is `/usr/lib/chromium/chromium`, and that is the
    /// one the BrowserWorker may execute (Landlock allows no shell).
    public static let candidates = [
        "/usr/lib/chromium/chromium", "/usr/lib/chromium-browser/chromium-browser", "/usr/bin/chromium", "/usr/bin/chromium-browser",
        "/opt/google/chrome/chrome", "/usr/bin/google-chrome-stable", "/usr/bin/google-chrome", "/opt/brave.com/brave/brave",
        "/opt/microsoft/msedge/msedge",
    ]

    public static func configuration(config: OpenClawConfig, stateDir: String, settings: BrowserProxySettings,
                                     environment: (String) -> String? = { getenv($0).map { String(cString: $0) } }) -> BrowserConfiguration {
        var profiles: [BrowserConfiguration.Profile] = []
        if case let .object(entries)? = config.value("browser.profiles") {
            for (name, value) in entries.sorted(by: { $0.key < $1.key }) {
                profiles.append(.init(
                    name: name, cdpPort: value["cdpPort"]?.intValue, cdpUrl: value["cdpUrl"]?.stringValue,
                    attachOnly: value["attachOnly"]?.boolValue ?? config.bool("browser.attachOnly") ?? false,
                    color: value["color"]?.stringValue ?? "#FF4500", headless: value["headless"]?.boolValue,
                    executablePath: value["executablePath"]?.stringValue.flatMap(usableExecutable)
                ))
            }
        }
        if let legacy = config.string("browser.cdpUrl"), !profiles.contains(where: { $0.name == settings.defaultProfile }) {
            profiles.append(.init(name: settings.defaultProfile, cdpPort: nil, cdpUrl: legacy, attachOnly: true, color: "#FF4500",
                                  headless: nil, executablePath: nil))
        }
        let configured = config.string("browser.executablePath")
        let executable = configured.map { usableExecutable($0) } ?? candidates.lazy.compactMap(usableExecutable).first
        let extraArgs = (config.value("browser.extraArgs")?.arrayValue ?? []).compactMap(\.stringValue)
        let display = [environment("DISPLAY"), environment("WAYLAND_DISPLAY")].contains { !($0 ?? "").isEmpty }
        return BrowserConfiguration(
            enabled: settings.browserEnabled, evaluateEnabled: config.bool("browser.evaluateEnabled") ?? true,
            defaultProfile: settings.defaultProfile, profiles: profiles, executablePath: executable ?? nil,
            headless: config.bool("browser.headless"), noSandbox: config.bool("browser.noSandbox") ?? false,
            extraArgs: extraArgs, dataDir: "\(stateDir)/browser", displayPresent: display
        )
    }

    /// The real path of an executable ELF file (not a script), or nil.
    static func usableExecutable(_ path: String) -> String? {
        guard access(path, X_OK) == 0, let real = realpath(path, nil) else { return nil }
        defer { free(real) }
        let resolved = String(cString: real)
        let fd = open(resolved, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var magic = [UInt8](repeating: 0, count: 4)
        guard read(fd, &magic, 4) == 4, magic == [0x7F, 0x45, 0x4C, 0x46] else { return nil }
        return resolved
    }

    /// The directory the BrowserWorker may execute from (the browser ships its helpers beside it).
    public static func directory(of executable: String) -> String {
        let parts = executable.split(separator: "/", omittingEmptySubsequences: false).dropLast()
        return parts.count > 1 ? parts.joined(separator: "/") : "/"
    }
}
