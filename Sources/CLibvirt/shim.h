#ifndef CLIBVIRT_SHIM_H
#define CLIBVIRT_SHIM_H
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdlib.h>

/* VIR_DOMAIN_EVENT_CALLBACK is a function-like macro (a cast) that Swift
   cannot import; this does the same cast for the lifecycle callback. */
static inline virConnectDomainEventGenericCallback
CLibvirt_lifecycleCallback(virConnectDomainEventCallback cb) {
    return (virConnectDomainEventGenericCallback)cb;
}

/* Likewise VIR_NODE_DEVICE_EVENT_CALLBACK, for node-device lifecycle events. */
static inline virConnectNodeDeviceEventGenericCallback
CLibvirt_nodeDeviceLifecycleCallback(virConnectNodeDeviceEventLifecycleCallback cb) {
    return (virConnectNodeDeviceEventGenericCallback)cb;
}
#endif
