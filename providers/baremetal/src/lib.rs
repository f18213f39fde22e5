//! frontdesk-provider-baremetal (in progress)
