import WebSocketsCore
import WebSocketsProtocol
#if os(Linux)
    import Glibc
    import NIOCore

    /// The descriptor of a SwiftNIO socket channel, found by reflection: SwiftNIO does not make it public, and the
    /// WebSocket connections move to sockets of ours (``SocketLoop``) once upgraded.
    ///
    /// SwiftNIO 2.101 keeps it in `BaseSocketChannel.socket` (a `Socket`), as `BaseSocket.descriptor`. If a later
    /// version keeps it elsewhere, nothing is found and the connection stays a SwiftNIO channel; a descriptor found is
    /// checked against the channel's peer address before it is used (`ChannelDescriptorTests`).
    package enum ChannelDescriptor {
        /// The channel's descriptor, or `nil` when it cannot be found or does not name the channel's peer.
        package static func of(_ channel: any Channel) -> CInt? {
            guard let socket = field("socket", of: channel), let descriptor = field("descriptor", of: socket) as? CInt
            else { return nil }
            guard let remote = channel.remoteAddress, let port = remote.port, peerPort(of: descriptor) == port else {
                return nil
            }
            return descriptor
        }

        /// A stored property named `label` of `subject` or of its superclasses.
        private static func field(_ label: String, of subject: Any) -> Any? {
            var mirror: Mirror? = Mirror(reflecting: subject)
            while let current = mirror {
                if let child = current.children.first(where: { $0.label == label }) { return child.value }
                mirror = current.superclassMirror
            }
            return nil
        }

        /// The peer's port of the socket `descriptor`, or `nil` when it has none.
        private static func peerPort(of descriptor: CInt) -> Int? {
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let result = withUnsafeMutablePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(descriptor, $0, &length) }
            }
            guard result == 0 else { return nil }
            switch Int32(storage.ss_family) {
            case AF_INET:
                return withUnsafePointer(to: &storage) {
                    $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                        Int(UInt16(bigEndian: $0.pointee.sin_port))
                    }
                }
            case AF_INET6:
                return withUnsafePointer(to: &storage) {
                    $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                        Int(UInt16(bigEndian: $0.pointee.sin6_port))
                    }
                }
            default:
                return nil
            }
        }
    }
#endif
