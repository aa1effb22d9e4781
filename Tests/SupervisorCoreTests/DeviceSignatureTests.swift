import Crypto
import Foundation
import OpenClawIPC
import XCTest
@testable import SupervisorCore

/// Device identity and connect signatures against ../shared/protocol/device-auth-vectors.json.
final class DeviceSignatureTests: XCTestCase {
    struct Vectors: Decodable {
        struct Key: Decodable {
            var seedHex: String
            var publicKeyBase64Url: String
            var deviceId: String
            var publicKeyPem: String
            var privateKeyPem: String
        }
        struct Case: Decodable {
            struct Inputs: Decodable {
                var deviceId: String
                var clientId: String
                var clientMode: String
                var role: String
                var scopes: [String]
                var signedAtMs: Int64
                var token: String?
                var nonce: String
                var platform: String?
                var deviceFamily: String?
            }
            var name: String
            var version: String
            var inputs: Inputs
            var payload: String
            var signatureBase64Url: String
        }
        var key: Key
        var cases: [Case]
    }

    static func vectors() throws -> Vectors {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        // The shared spec beside the project when present, else the copy the repository keeps.
        let shared = root.deletingLastPathComponent().appendingPathComponent("shared/protocol/device-auth-vectors.json").path
        let copy = root.appendingPathComponent("Tests/gateway/fixtures/device-auth-vectors.json").path
        let bytes = try XCTUnwrap(try SecureFile.read(shared) ?? SecureFile.read(copy), "missing \(shared) and \(copy)")
        return try JSONDecoder().decode(Vectors.self, from: Data(bytes))
    }

    static func identity(_ key: Vectors.Key) throws -> DeviceIdentity {
        var seed: [UInt8] = []
        var hex = Substring(key.seedHex)
        while !hex.isEmpty {
            seed.append(UInt8(hex.prefix(2), radix: 16)!)
            hex = hex.dropFirst(2)
        }
        return DeviceIdentity(privateKey: try .init(rawRepresentation: seed), createdAtMs: 0)
    }

    func testIdentityMatchesTheVectorKey() throws {
        let vectors = try Self.vectors()
        let identity = try Self.identity(vectors.key)
        XCTAssertEqual(identity.deviceId, vectors.key.deviceId)
        XCTAssertEqual(identity.publicKeyBase64Url, vectors.key.publicKeyBase64Url)
        XCTAssertEqual(identity.publicKeyPem, vectors.key.publicKeyPem)
        XCTAssertEqual(identity.privateKeyPem, vectors.key.privateKeyPem)
    }

    func testEveryVectorPayloadAndSignatureMatches() throws {
        let vectors = try Self.vectors()
        let identity = try Self.identity(vectors.key)
        XCTAssertEqual(vectors.cases.count, 8)
        for vector in vectors.cases {
            let input = vector.inputs
            let payload = ConnectPayload(deviceId: input.deviceId, clientId: input.clientId, clientMode: input.clientMode,
                                         role: input.role, scopes: input.scopes, signedAtMs: input.signedAtMs,
                                         token: input.token ?? "", nonce: input.nonce,
                                         platform: input.platform, deviceFamily: input.deviceFamily)
            let text = payload.text(SignatureVersion(rawValue: vector.version)!)
            XCTAssertEqual(text, vector.payload, vector.name)
            XCTAssertEqual(try identity.sign(text), vector.signatureBase64Url, vector.name)
        }
    }

    func testIdentityFileIsCreatedOnceAndStable() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/identity/device.json"
        let first = try IdentityFile.loadOrCreate(at: path)
        guard case .created = first else { return XCTFail("expected created") }
        let second = try IdentityFile.loadOrCreate(at: path)
        guard case .loaded = second else { return XCTFail("expected loaded") }
        XCTAssertEqual(first.identity.deviceId, second.identity.deviceId)
        var info = stat()
        XCTAssertEqual(stat(path, &info), 0)
        XCTAssertEqual(info.st_mode & 0o777, 0o600)
        let text = String(decoding: try XCTUnwrap(try SecureFile.read(path)), as: UTF8.self)
        XCTAssertTrue(text.hasPrefix("{\n  \"createdAtMs\": "), text)
        XCTAssertTrue(text.contains("\"publicKeyPem\": \"-----BEGIN PUBLIC KEY-----\\n"), text)
        XCTAssertTrue(text.hasSuffix("}\n"))
    }

    func testSwiftShapedIdentityIsReadAndRewrittenInTSShape() throws {
        let vectors = try Self.vectors()
        let dir = try TemporaryDirectory()
        let path = dir.path + "/device.json"
        let swiftShape = #"{"deviceId":"\#(vectors.key.deviceId)","publicKey":"A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=","privateKey":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=","createdAtMs":5}"#
        try SecureFile.write(path, Array(swiftShape.utf8))
        let loaded = try IdentityFile.loadOrCreate(at: path)
        guard case .repaired = loaded else { return XCTFail("expected repaired") }
        XCTAssertEqual(loaded.identity.deviceId, vectors.key.deviceId)
        guard case .loaded = try IdentityFile.loadOrCreate(at: path) else { return XCTFail("expected TS shape on disk") }
    }

    func testSymlinkedIdentityFileIsRefused() throws {
        let dir = try TemporaryDirectory()
        symlink("/etc/hostname", dir.path + "/device.json")
        XCTAssertThrowsError(try IdentityFile.loadOrCreate(at: dir.path + "/device.json")) {
            XCTAssertEqual($0 as? SecureFile.Failure, .symlink(dir.path + "/device.json"))
        }
    }
}

/// A directory removed when the test ends.
final class TemporaryDirectory {
    let path: String
    init() throws {
        var template = Array("/tmp/openclaw-test-XXXXXX".utf8CString)
        guard let result = mkdtemp(&template) else { throw SystemErrorForTests.mkdtemp }
        path = String(cString: result)
    }
    deinit {
        _ = try? runShell("rm -rf '\(path)'")
    }
}

enum SystemErrorForTests: Error { case mkdtemp }

@discardableResult
func runShell(_ command: String) throws -> Int32 {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", command]
    try process.run()
    process.waitUntilExit()
    return process.terminationStatus
}
