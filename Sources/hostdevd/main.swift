// The daemon arrives with the daemon issue; until then it says what it is.
print("hostdevd 0.1.0 (daemon not yet implemented; use hostdevctl)")
