"""Pure (sans-I/O) protocol code for interactive sessions: message encoding and event mapping."""
