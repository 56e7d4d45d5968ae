//! openraft's storage (to come).
