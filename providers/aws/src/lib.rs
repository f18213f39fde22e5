//! frontdesk-provider-aws (in progress)
