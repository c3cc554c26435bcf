#if canImport(Glibc)
    import Glibc
#endif
import CLibvirt

/// libvirt's default event loop on a thread of its own. It must be
/// registered before the first connection is opened, and it is what
/// delivers domain events, keepalives and close notifications. The thread
/// sleeps in poll(2) while nothing happens.
public enum LibvirtEventLoop {
    private static let started: Bool = {
        guard virEventRegisterDefaultImpl() == 0 else { return false }
        var thread = pthread_t()
        pthread_create(&thread, nil, { _ in
            while true { _ = virEventRunDefaultImpl() }
        }, nil)
        pthread_detach(thread)
        return true
    }()

    /// Starts the loop once per process; later calls do nothing.
    @discardableResult
    public static func start() -> Bool { started }
}

/// What libvirt reported: a domain's or a node device's lifecycle, or the
/// connection's end.
public enum LibvirtEvent: Sendable, Equatable {
    /// Defined, undefined, started, stopped, suspended, resumed, migrated: the VM's key is dirty.
    case lifecycle(vm: String, event: Int32)
    /// A node device created, deleted, defined or undefined (`pci_0000_01_00_0`):
    /// libvirt's view of hotplug, for hosts where udev events are not seen.
    case nodeDevice(name: String, event: Int32)
    /// The connection closed (libvirtd went away): reconnect and resync.
    case connectionClosed
}

/// Domain and node-device lifecycle events and connection loss of one
/// connection, as an `AsyncStream`. Requires `LibvirtEventLoop.start()` before the connection
/// was opened.
public final class LibvirtEventSource: @unchecked Sendable {
    // @unchecked: set up in init, torn down in deinit; the callbacks only
    // touch the Sink, whose continuation is thread-safe.

    final class Sink {
        let continuation: AsyncStream<LibvirtEvent>.Continuation
        init(_ continuation: AsyncStream<LibvirtEvent>.Continuation) { self.continuation = continuation }
    }

    public let events: AsyncStream<LibvirtEvent>
    private let connection: LibvirtConnection
    private var callbackID: Int32 = -1
    private var nodeDeviceCallbackID: Int32 = -1
    private var closeRegistered = false

    public init(connection: LibvirtConnection) throws {
        self.connection = connection
        let (stream, continuation) = AsyncStream<LibvirtEvent>.makeStream(bufferingPolicy: .unbounded)
        events = stream
        let lifecycle: virConnectDomainEventCallback = { _, domain, event, _, opaque in
            guard let opaque, let domain, let name = virDomainGetName(domain) else { return 0 }
            let sink = Unmanaged<Sink>.fromOpaque(opaque).takeUnretainedValue()
            sink.continuation.yield(.lifecycle(vm: String(cString: name), event: event))
            return 0
        }
        callbackID = Self.register(continuation) { sink in
            virConnectDomainEventRegisterAny(
                connection.pointer, nil, Int32(VIR_DOMAIN_EVENT_ID_LIFECYCLE.rawValue), CLibvirt_lifecycleCallback(lifecycle),
                sink, Self.release)
        }
        guard callbackID >= 0 else {
            continuation.finish()
            throw LibvirtError.last("subscribing to domain events on \(connection.uri)")
        }
        let nodeDevice: virConnectNodeDeviceEventLifecycleCallback = { _, device, event, _, opaque in
            guard let opaque, let device, let name = virNodeDeviceGetName(device) else { return }
            let sink = Unmanaged<Sink>.fromOpaque(opaque).takeUnretainedValue()
            sink.continuation.yield(.nodeDevice(name: String(cString: name), event: event))
        }
        // Optional: domain events and udev still drive the daemon without it.
        nodeDeviceCallbackID = Self.register(continuation) { sink in
            virConnectNodeDeviceEventRegisterAny(
                connection.pointer, nil, Int32(VIR_NODE_DEVICE_EVENT_ID_LIFECYCLE.rawValue),
                CLibvirt_nodeDeviceLifecycleCallback(nodeDevice), sink, Self.release)
        }
        closeRegistered = Self.register(continuation) { sink in
            virConnectRegisterCloseCallback(connection.pointer, Self.closed, sink, Self.release)
        } >= 0
        // Notice a dead libvirtd within seconds even when no call is made.
        _ = virConnectSetKeepAlive(connection.pointer, 5, 3)
    }

    deinit {
        if callbackID >= 0 { virConnectDomainEventDeregisterAny(connection.pointer, callbackID) }
        if nodeDeviceCallbackID >= 0 { virConnectNodeDeviceEventDeregisterAny(connection.pointer, nodeDeviceCallbackID) }
        if closeRegistered { virConnectUnregisterCloseCallback(connection.pointer, Self.closed) }
    }

    /// Hands libvirt a retained `Sink` for one callback; libvirt releases it
    /// through `release` when the callback goes, and on a failed
    /// registration (a negative result) it is released here.
    private static func register(
        _ continuation: AsyncStream<LibvirtEvent>.Continuation, _ body: (UnsafeMutableRawPointer) -> Int32
    ) -> Int32 {
        let sink = Unmanaged.passRetained(Sink(continuation)).toOpaque()
        let result = body(sink)
        if result < 0 { Unmanaged<Sink>.fromOpaque(sink).release() }
        return result
    }

    private static let release: virFreeCallback = { opaque in
        if let opaque { Unmanaged<Sink>.fromOpaque(opaque).release() }
    }

    /// One function for register and unregister: libvirt matches them by pointer.
    private static let closed: virConnectCloseFunc = { _, _, opaque in
        guard let opaque else { return }
        let sink = Unmanaged<Sink>.fromOpaque(opaque).takeUnretainedValue()
        sink.continuation.yield(.connectionClosed)
        sink.continuation.finish()
    }
}
