// swift-tools-version:6.0
import PackageDescription

// One binary, four processes (docs/architecture.md has the role table and the path of a
// system.run through the code):
//   openclaw-node          Supervisor: config, secrets, device key, state files, every decision
//   openclaw-node-net      NetWorker: the only network-facing code, confined, cannot exec or write
//   openclaw-node-exec     ExecWorker: runs only what the Supervisor authorised
//   openclaw-node-browser  BrowserWorker: Chromium over CDP for browser.proxy, started on first use
// The Supervisor starts each worker by re-executing its own binary with the worker's name as
// argv[0] (`WorkerRole`); `swift build` and the .deb therefore run the same single file. The
// logic lives in the *Core libraries so it can be unit-tested; the executable is thin.
//
// Linux only (seccomp, Landlock, prctl, /proc): no `platforms` entry, which would only name
// Apple ones. Targets stay in the Swift 5 language mode: every handler runs confined to one
// NIO event loop (checked with `preconditionInEventLoop`), which Swift 6's Sendable checking
// cannot see, so strict mode would mean unchecked-Sendable wrappers around all of them
// without making anything safer.

let v5: [SwiftSetting] = [.swiftLanguageMode(.v5)]

let package = Package(
    name: "openclaw-node",
    products: [
        .executable(name: "openclaw-node", targets: ["Supervisor"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // C shims for Linux calls Swift cannot make directly (variadic, _GNU_SOURCE, raw syscalls).
        .target(name: "CSystemShims"),
        // Shared: logging, posix_spawn, process helpers.
        .target(
            name: "NodeSupport",
            dependencies: ["CSystemShims", .product(name: "Logging", package: "swift-log"), .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: v5
        ),
        // C shims for libseccomp (macros, variadic rules), libcap and the Landlock syscalls.
        .target(name: "CConfinement", linkerSettings: [.linkedLibrary("seccomp"), .linkedLibrary("cap")]),
        // Shared: typed wrappers over seccomp, capabilities, uid drop, no_new_privs and Landlock,
        // plus the per-worker policy tables and start-up sequence.
        .target(
            name: "Confinement",
            dependencies: ["CConfinement", "CSystemShims", "OpenClawIPC", "NodeSupport", .product(name: "Logging", package: "swift-log")],
            swiftSettings: v5
        ),
        // Shared: the IPC wire (length-prefixed JSON frames, closed message enums).
        .target(
            name: "OpenClawIPC",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: v5
        ),
        // The system SQLite, to read the official node host's state database once (import).
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", providers: [.apt(["libsqlite3-dev"])]),
        // Supervisor: privileged, owns secrets, state and policy.
        .target(
            name: "SupervisorCore",
            dependencies: [
                "OpenClawIPC",
                "CSQLite",
                "GatewayProtocol",
                "Confinement",
                "NodeSupport",
                "CSystemShims",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: v5
        ),
        // The one binary: started under a worker's name (argv[0], as the Supervisor re-executes
        // it), it runs that worker, so the processes share one file's code pages (PSS).
        .executableTarget(
            name: "Supervisor",
            dependencies: [
                "SupervisorCore",
                "Confinement",
                "NetWorkerCore",
                "ExecWorkerCore",
                "BrowserWorkerCore",
                "FilesWorkerCore",
                "McpWorkerCore",
                // doctor's loopback self-test gateway
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: v5
        ),
        // The gateway protocol's frames as plain functions (no sockets): what the NetWorker
        // writes and how it reads what the gateway sends.
        .target(name: "GatewayProtocol", dependencies: ["OpenClawIPC", "NodeSupport"], swiftSettings: v5),
        // NetWorker: gateway link, unprivileged.
        .target(
            name: "NetWorkerCore",
            dependencies: [
                "OpenClawIPC",
                "GatewayProtocol",
                "Confinement",
                "NodeSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: v5
        ),
        // ExecWorker: spawns authorised commands.
        .target(
            name: "ExecWorkerCore",
            dependencies: [
                "OpenClawIPC",
                "Confinement",
                "NodeSupport",
                "CSystemShims",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: v5
        ),
        // BrowserWorker: Chromium over the DevTools protocol for browser.proxy (optional, started on first use).
        .target(
            name: "BrowserWorkerCore",
            dependencies: [
                "OpenClawIPC",
                "Confinement",
                "NodeSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: v5
        ),
        // McpWorker: the node's MCP servers and their tool calls.
        .target(
            name: "McpWorkerCore",
            dependencies: [
                "OpenClawIPC", "Confinement", "NodeSupport", "CSystemShims",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: v5
        ),
        // Files worker: one fs.listDir, terminal.upload or uploads' clean-up per process.
        .target(
            name: "FilesWorkerCore",
            dependencies: ["OpenClawIPC", "Confinement", "NodeSupport", "CSystemShims"],
            swiftSettings: v5
        ),

        // Test-only: a worker that forges IPC (garbage, oversize frames, out-of-state messages).
        .executableTarget(
            name: "ForgedWorker",
            dependencies: ["OpenClawIPC", "Confinement"],
            path: "Tests/ForgedWorker",
            swiftSettings: v5
        ),
        // libFuzzer targets for every parser of untrusted bytes (scripts/fuzz builds them with
        // -sanitize=fuzzer,address -DOPENCLAW_FUZZING); a plain build replays corpus files instead.
        .target(name: "CFuzzDriver", path: "Fuzz/CFuzzDriver"),
        .executableTarget(
            name: "openclaw-fuzz",
            dependencies: ["CFuzzDriver", "OpenClawIPC", "GatewayProtocol", "SupervisorCore", "BrowserWorkerCore", "NodeSupport",
                           .product(name: "NIOCore", package: "swift-nio")],
            path: "Fuzz/Targets",
            swiftSettings: v5
        ),
        .testTarget(name: "OpenClawIPCTests", dependencies: ["OpenClawIPC"], swiftSettings: v5),
        .testTarget(name: "GatewayProtocolTests", dependencies: ["GatewayProtocol", "OpenClawIPC"], swiftSettings: v5),
        .testTarget(name: "SupervisorCoreTests", dependencies: ["SupervisorCore", "Confinement", "NodeSupport", "CSQLite",
                                                          .product(name: "NIOEmbedded", package: "swift-nio")], swiftSettings: v5),
        .testTarget(name: "NodeSupportTests", dependencies: ["NodeSupport", .product(name: "Logging", package: "swift-log")],
                    swiftSettings: v5),
        .testTarget(name: "ConfinementTests", dependencies: ["Confinement", "OpenClawIPC"], swiftSettings: v5),
        .testTarget(name: "ExecWorkerCoreTests", dependencies: ["ExecWorkerCore", "NodeSupport", "OpenClawIPC"], swiftSettings: v5),
        .testTarget(name: "NetWorkerCoreTests", dependencies: ["NetWorkerCore", "GatewayProtocol", "OpenClawIPC",
                                                         .product(name: "Logging", package: "swift-log")], swiftSettings: v5),
        .testTarget(name: "BrowserWorkerCoreTests", dependencies: ["BrowserWorkerCore", "OpenClawIPC"], swiftSettings: v5),
        .testTarget(name: "FilesWorkerCoreTests", dependencies: ["FilesWorkerCore", "OpenClawIPC", "NodeSupport"], swiftSettings: v5),
    ]
)
