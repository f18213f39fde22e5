//! frontdesk-provider-mock
