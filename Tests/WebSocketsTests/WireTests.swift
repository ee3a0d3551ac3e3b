import Foundation
import Testing

@testable import WebSockets
@testable import WebSocketsCluster
@testable import WebSocketsConnection
@testable import WebSocketsCore
@testable import WebSocketsHub
@testable import WebSocketsSite

@Suite struct WireTests {
    @Test func parsesAndPrintsJSON() throws {
        let text = #"{"a":[1,-2.5,true,false,null,"x\"\u00e9\ud83d\ude00"],"b":{}}"#
        let value = try JSON(parsing: text)
        #expect(value["a"] == [1, -2.5, true, false, nil, "x\"é😀"])
        #expect(try JSON(parsing: value.serialized()) == value)
        #expect(try JSON(parsing: "42") == .int(42))
        #expect(JSON.double(42).serialized() == "42")
        #expect(JSON.string("a\nb\u{1}").serialized() == #""a\nb\u0001""#)
    }

    @Test func rejectsMalformedJSON() {
        for text in [
            "", "[", "[1,]", "{\"a\"}", "tru", "01", "1.", "\"\u{1}\"", "[1] x", "\"\\ud800\\u\"",
            String(repeating: "[", count: 200) + String(repeating: "]", count: 200),
        ] {
            #expect(throws: JSONError.self, "\(text)") { try JSON(parsing: text) }
        }
    }

    /// RFC 8259's cases from JSONTestSuite: every `y_` accepted, every `n_` refused, and the `i_` cases of lone
    /// surrogates accepted (each becomes U+FFFD).
    @Test func followsJSONTestSuite() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        let folder = root.appendingPathComponent("shared/JSONTestSuite/test_parsing")
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
        #expect(names.count > 300)
        for name in names {
            let bytes = [UInt8](try Data(contentsOf: folder.appendingPathComponent(name)))
            let result = Result { try JSON(parsing: bytes) }
            if name.hasPrefix("y_") || (name.hasPrefix("i_") && name.contains("surrogate") && !name.contains("UTF8")) {
                #expect(throws: Never.self, "\(name)") { try result.get() }
            } else if name.hasPrefix("n_") {
                #expect(throws: JSONError.self, "\(name)") { try result.get() }
            }
        }
        // A send's details are checked without being read (`JSONParser.skipValue`): as the value of a send, and of
        // one of a list, each case is accepted exactly when the parser accepts it, and kept byte for byte.
        for name in names {
            let bytes = [UInt8](try Data(contentsOf: folder.appendingPathComponent(name)))
            let parses = (try? JSON(parsing: bytes)) != nil
            for send in [
                Array(#"["a", "#.utf8) + bytes + Array(", 1]".utf8),
                Array(#"[["b", 1, 1], ["a", "#.utf8) + bytes + Array(", 1]]".utf8),
            ] {
                let sends = try? Send.list(parsing: send)
                #expect((sends != nil) == parses, "\(name) as a send's details")
                if parses, let last = sends?.last {
                    #expect(
                        last.rawDetails.bytes
                            == Array(
                                bytes.drop { $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }.reversed().drop {
                                    $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09
                                }.reversed()), "\(name)")
                }
            }
        }
        #expect(try JSON(parsing: #""\ud83d""#) == "\u{FFFD}")
        #expect(try JSON(parsing: #""\udc00\ud83d\ude00x""#) == "\u{FFFD}😀x")
        #expect(try JSON(parsing: #""\ud800\ud800\udc00""#) == "\u{FFFD}𐀀")
    }

    @Test func decodesFrames() throws {
        #expect(try Message(frame: #"["hello", {"a": 1}]"#) == Message(action: "hello", details: ["a": 1]))
        #expect(try Message(frame: #"["hello", null, "extra"]"#).details == .null)
        for bad in [#"{"a":1}"#, #"["only"]"#, #"[1, 2]"#, "not json", "[]"] {
            #expect(throws: WireError.self, "\(bad)") { try Message(frame: bad) }
        }
        #expect(String(decoding: Message(action: "a\"b", details: [1]).encoded(), as: UTF8.self) == #"["a\"b",[1]]"#)
    }

    @Test func composesErrors() {
        #expect(composeError(404) == [404, "Not Found"])
        #expect(composeError(403) == [403, "Forbidden"])
        #expect(composeError(500, "Oops") == [500, "Oops"])
        #expect(
            Message(action: "hello").errorReply(code: 502)
                == Message(action: "hello:error", details: [502, "Bad Gateway"]))
    }

    @Test func decodesSends() throws {
        #expect(try Send.list(from: ["a", nil, 1]) == [Send(action: "a", sendTo: .all)])
        #expect(try Send.list(from: [["a", 1, 3, 42], ["b", 2, 4, [1, 2]]]).count == 2)
        #expect(try Send(json: ["a", nil, 5, ["user", 1]]).target == ["user", 1])
        #expect(SendTo.specificUsers.rawValue == 3 && SendTo.filter.rawValue == 5 && SendTo.connections.rawValue == 7)
        for bad: JSON in [["a", nil], ["a", nil, 9], [1, nil, 1], ["a", nil, 3], ["a", nil, 5, "user"], "x"] {
            #expect(throws: WireError.self, "\(bad)") { try Send.list(from: bad) }
        }
    }

    @Test func matchesIdsAcrossTypes() {
        #expect(JSON.int(42).indexKey == JSON.string("42").indexKey)
        #expect(JSON.double(42).indexKey == "42")
        #expect(JSON.int(1).loosely(equals: "1"))
        #expect(!JSON.int(1).loosely(equals: "2"))
    }

    /// The size a limit measures is the size of the text written.
    @Test func aSendsEncodedCountIsTheLengthOfItsText() {
        let sends = [
            Send(action: "a", sendTo: .all),
            Send(
                action: "é \"quoted\"\n", rawDetails: RawJSON(unchecked: Array(#"{"x": [1, 2]}"#.utf8)),
                sendTo: .filter, target: ["user", 1]),
            Send(
                action: "big", details: .string(String(repeating: "z", count: 5000)), sendTo: .specificUsers,
                target: [1, "2", 3.5]),
            Send(action: "Server/close_by_user", details: 7, sendTo: .connections, target: "c-1"),
        ]
        for send in sends { #expect(send.encodedCount == send.encoded().count, "\(send.action)") }
    }
}
