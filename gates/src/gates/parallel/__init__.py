"""What a parallel test run gains over the serial one, and why it gains no more."""
