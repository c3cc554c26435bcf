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
        let release: virFreeCallback = { opaque in
            if let opaque { Unmanaged<Sink>.fromOpaque(opaque).release() }
        }
        let sink = Unmanaged.passRetained(Sink(continuation)).toOpaque()
        callbackID = virConnectDomainEventRegisterAny(
            connection.pointer, nil, Int32(VIR_DOMAIN_EVENT_ID_LIFECYCLE.rawValue), CLibvirt_lifecycleCallback(lifecycle),
            sink, release)
        guard callbackID >= 0 else {
            Unmanaged<Sink>.fromOpaque(sink).release()
            continuation.finish()
            throw LibvirtError.last("subscribing to domain events on \(connection.uri)")
        }
        let nodeDevice: virConnectNodeDeviceEventLifecycleCallback = { _, device, event, _, opaque in
            guard let opaque, let device, let name = virNodeDeviceGetName(device) else { return }
            let sink = Unmanaged<Sink>.fromOpaque(opaque).takeUnretainedValue()
            sink.continuation.yield(.nodeDevice(name: String(cString: name), event: event))
        }
        let nodeDeviceSink = Unmanaged.passRetained(Sink(continuation)).toOpaque()
        nodeDeviceCallbackID = virConnectNodeDeviceEventRegisterAny(
            connection.pointer, nil, Int32(VIR_NODE_DEVICE_EVENT_ID_LIFECYCLE.rawValue),
            CLibvirt_nodeDeviceLifecycleCallback(nodeDevice), nodeDeviceSink, release)
        if nodeDeviceCallbackID < 0 {
            // Optional: domain events and udev still drive the daemon.
            Unmanaged<Sink>.fromOpaque(nodeDeviceSink).release()
        }
        let closeSink = Unmanaged.passRetained(Sink(continuation)).toOpaque()
        if virConnectRegisterCloseCallback(connection.pointer, Self.closed, closeSink, release) == 0 {
            closeRegistered = true
        } else {
            Unmanaged<Sink>.fromOpaque(closeSink).release()
        }
        // Notice a dead libvirtd within seconds even when no call is made.
        _ = virConnectSetKeepAlive(connection.pointer, 5, 3)
    }

    deinit {
        if callbackID >= 0 { virConnectDomainEventDeregisterAny(connection.pointer, callbackID) }
        if nodeDeviceCallbackID >= 0 { virConnectNodeDeviceEventDeregisterAny(connection.pointer, nodeDeviceCallbackID) }
        if closeRegistered { virConnectUnregisterCloseCallback(connection.pointer, Self.closed) }
    }

    /// One function for register and unregister: libvirt matches them by pointer.
    private static let closed: virConnectCloseFunc = { _, _, opaque in
        guard let opaque else { return }
        let sink = Unmanaged<Sink>.fromOpaque(opaque).takeUnretainedValue()
        sink.continuation.yield(.connectionClosed)
        sink.continuation.finish()
    }
}
