"""How long tests wait, in one place: guards against a hang, never expectations of speed."""

HANG_S = 600
"""How long a test waits on a process or a server before calling it hung. A guard against a hang,
never an expectation of speed: nothing a test asserts may depend on how loaded the machine is."""
SDK_TIMEOUT_S = 60
"""The SDK's request timeout in runs against the fake world. Long: on a loaded machine a fake
answer can take seconds, and a request the SDK gives up on is sent again and answered twice —
a test that counts requests would see a double payment no crash caused."""
