import Confinement
import Glibc
import NodeSupport
import OpenClawIPC

/// Entry point of `openclaw-node-files`: one request per process. The Supervisor starts it
/// for one `fs.listDir`, one `terminal.upload` or one clean-up of the uploads, with the
/// Landlock rules of exactly that request on its command line (`--files-mode`); it confines
/// itself before it reads its request (stdin, JSON), answers with one JSON document on stdout
/// and exits. It executes nothing and starts no process (seccomp), and reaches no network.
public enum FilesWorkerMain {
    /// The largest request read: a terminal upload's base64 at its limit, and the envelope.
    static let maxRequestBytes = TerminalUploadLimits.maxBase64Length + 64 * 1024

    /// stdout: first its confinement report (one line: the Supervisor checks it against
    /// `/proc` while the worker waits for its request), then its one reply.
    public static func run() -> Never {
        // A failed step is answered on stdout, its one reply (it has no IPC socket).
        let started = WorkerStartup.confine(.files) { report in
            print((try? JSONText.encode(FilesReply(confinement: report, ok: false, error: WireError(
                code: "UNAVAILABLE", message: "\(WorkerRole.files.processName) could not confine itself")))) ?? "{}")
        }
        var reply: FilesReply
        switch started.options.filesMode {
        case .list?:
            ready(started)
            reply = DirectoryListing.answer(readRequest())
        case .stage?:
            guard let root = started.options.filesRoot, let size = started.value(of: "--stage-size").flatMap(Int.init) else {
                return usage()
            }
            reply = UploadStaging.stage(root: root, size: size, ready: { ready(started) }, request: readRequest)
        case .sweep?:
            guard let root = started.options.filesRoot else { return usage() }
            ready(started)
            reply = UploadSweep.sweep(root: root, request: readRequest())
        case nil:
            return usage()
        }
        print((try? JSONText.encode(reply)) ?? #"{"ok":false}"#)
        exit(0)
    }

    static func ready(_ started: WorkerStartup.Started) {
        print((try? JSONText.encode(FilesReply(confinement: started.report, ok: true))) ?? "{}")
        fflush(stdout)
    }

    /// The request on stdin (nil: not a request).
    static func readRequest() -> FilesRequest? {
        try? JSONText.decode(FilesRequest.self, from: String(decoding: readStandardInput(limit: maxRequestBytes), as: UTF8.self))
    }

    static func usage() -> Never {
        fputs("openclaw-node-files: started without a request (--files-mode list|stage|sweep); run `openclaw-node run` instead\n", stderr)
        exit(64)
    }
}

/// Node's rendering of a failed file call (`String(err)` of a libuv error): `Error: ENOENT: no
/// such file or directory, scandir '/x'`, as upstream's node host answers it.
enum NodeErrorText {
    static func describe(_ code: Int32, syscall: String, path: String) -> String {
        let (name, text) = names[code] ?? ("E\(code)", String(cString: strerror(code)).lowercased())
        return "Error: \(name): \(text), \(syscall) '\(path)'"
    }

    /// libuv's names and texts for the errors a listing or a write meets.
    static let names: [Int32: (String, String)] = [
        ENOENT: ("ENOENT", "no such file or directory"), ENOTDIR: ("ENOTDIR", "not a directory"),
        EACCES: ("EACCES", "permission denied"), EPERM: ("EPERM", "operation not permitted"),
        ELOOP: ("ELOOP", "too many symbolic links encountered"), ENAMETOOLONG: ("ENAMETOOLONG", "name too long"),
        EMFILE: ("EMFILE", "too many open files"), ENFILE: ("ENFILE", "file table overflow"), EIO: ("EIO", "i/o error"),
        ENOMEM: ("ENOMEM", "not enough memory"), ENOSPC: ("ENOSPC", "no space left on device"),
        EEXIST: ("EEXIST", "file already exists"), EROFS: ("EROFS", "read-only file system"),
        EDQUOT: ("EDQUOT", "disk quota exceeded"), EISDIR: ("EISDIR", "illegal operation on a directory"),
    ]
}
