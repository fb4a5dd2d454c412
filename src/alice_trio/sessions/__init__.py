"""Interactive sessions: long-lived CLI processes with submit, steer, queue and interrupt."""
