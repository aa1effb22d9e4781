import Glibc
import XCTest

/// Temporary directories and files made with plain libc calls (no Foundation in this package).
enum Scratch {
    static func makeDirectory() -> String {
        var template = Array("/tmp/command-analysis-XXXXXX".utf8CString)
        let path = template.withUnsafeMutableBufferPointer { buffer -> String in
            guard let result = mkdtemp(buffer.baseAddress!) else { fatalError("mkdtemp failed") }
            return String(cString: result)
        }
        return path
    }

    static func makeSubdirectory(_ path: String) {
        precondition(mkdir(path, 0o755) == 0, "mkdir \(path) failed")
    }

    static func writeFile(_ path: String, mode: mode_t, contents: String = "#!/bin/sh\nexit 0\n") {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode)
        precondition(fd >= 0, "open \(path) failed")
        _ = contents.withCString { write(fd, $0, strlen($0)) }
        close(fd)
        precondition(chmod(path, mode) == 0)
    }

    static func remove(_ path: String) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            if let dir = opendir(path) {
                while let entry = readdir(dir) {
                    let name = withUnsafePointer(to: entry.pointee.d_name) {
                        $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
                    }
                    if name != "." && name != ".." { remove(path + "/" + name) }
                }
                closedir(dir)
            }
            rmdir(path)
        } else {
            unlink(path)
        }
    }
}

/// A test case that gets a fresh scratch directory per test.
class ScratchTestCase: XCTestCase {
    var dir = ""

    override func setUp() {
        super.setUp()
        dir = Scratch.makeDirectory()
    }

    override func tearDown() {
        Scratch.remove(dir)
        super.tearDown()
    }
}
