import Testing

@testable import WebSocketsConnection

/// permessage-deflate's negotiation (RFC 7692 section 7), on header values: what browsers and libraries offer, and
/// the offers the server must decline whole.
@Suite struct DeflateNegotiationTests {
    private static let noTakeover = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

    @Test func whatBrowsersAndLibrariesOfferIsAcceptedWithoutContextTakeover() {
        // Chromium and Firefox; Node's ws; Python's websockets.
        for offer in [
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate",
            "permessage-deflate; client_max_window_bits=15",
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        ] {
            let agreement = DeflateNegotiation.agreement(offers: [offer])
            #expect(
                agreement == DeflateNegotiation(serverMaxWindowBits: 15, responseHeader: Self.noTakeover), "\(offer)")
        }
    }

    @Test func aLimitOnTheServersWindowIsHonouredAndAnswered() {
        let agreement = DeflateNegotiation.agreement(offers: [#"permessage-deflate; server_max_window_bits="10""#])
        #expect(agreement?.serverMaxWindowBits == 10)
        #expect(agreement?.responseHeader == Self.noTakeover + "; server_max_window_bits=10")
    }

    @Test func anOfferTheServerCannotHonourIsDeclinedAndTheNextOneTried() {
        let declined = [
            "x-webkit-deflate-frame",
            "permessage-deflate; server_max_window_bits",  // a value is required
            "permessage-deflate; server_max_window_bits=8",  // zlib compresses with 9 at least
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; client_max_window_bits=7",
            "permessage-deflate; client_max_window_bits=abc",
            "permessage-deflate; client_max_window_bits=+9",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; unknown_parameter",
        ]
        for offer in declined {
            #expect(DeflateNegotiation.agreement(offers: [offer]) == nil, "\(offer)")
        }
        // Offers are tried in order, across one header's list and across headers.
        let fallback = DeflateNegotiation.agreement(offers: [
            "permessage-deflate; server_max_window_bits=8, permessage-deflate; server_max_window_bits=12",
            "permessage-deflate",
        ])
        #expect(fallback?.serverMaxWindowBits == 12)
        let second = DeflateNegotiation.agreement(offers: ["x-unknown", "permessage-deflate; client_max_window_bits"])
        #expect(second?.serverMaxWindowBits == 15)
        #expect(DeflateNegotiation.agreement(offers: []) == nil)
    }

    @Test func namesAreCaseInsensitiveAndSpacesAndQuotesAreHTTPs() {
        let agreement = DeflateNegotiation.agreement(offers: [
            "  Permessage-Deflate ;SERVER_MAX_WINDOW_BITS = \"11\" ;\tclient_max_window_bits "
        ])
        #expect(agreement?.serverMaxWindowBits == 11)
        // A comma inside a quoted value does not split the list (and makes the value invalid: declined).
        #expect(DeflateNegotiation.agreement(offers: [#"permessage-deflate; client_max_window_bits="1,5""#]) == nil)
    }
}
