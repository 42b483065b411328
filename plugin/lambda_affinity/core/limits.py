"""What AWS Lambda accepts, written once: `deploy` checks its options and the emulator its config against these.

Pure: constants only. Each value is AWS's, from its documentation:

FUNCTION_NAME       1 to 64 letters, digits, '-' or '_' (an unqualified name).
                    https://docs.aws.amazon.com/lambda/latest/api/API_CreateFunction.html (FunctionName)
MEMORY_MIN_MB/MAX   128 MB to 10,240 MB.
                    https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html (Function memory
                    allocation); API_CreateFunction.html (MemorySize: minimum 128, maximum 10240)
TIMEOUT_MIN_S/MAX   1 to 900 seconds (15 minutes).
                    https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html (Function timeout);
                    API_CreateFunction.html (Timeout: minimum 1)
MAX_PAYLOAD         6 MB (6,291,456 bytes) for a synchronous invocation's request.
                    https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html (Invocation payload)
MAX_RESPONSE        the same 6 MB for the response, which AWS enforces as 6 MB + 100 bytes (6,291,556): the
                    number its Function.ResponseSizeTooLarge error states.
ENV_TOTAL_BYTES     4 KB for all of a function's environment variables together.
                    https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html (Environment variables)
URL_AUTH_TYPES      a Function URL's auth type: AWS_IAM or NONE.
                    https://docs.aws.amazon.com/lambda/latest/api/API_CreateFunctionUrlConfig.html (AuthType)
"""

from __future__ import annotations

import re

FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MEMORY_MIN_MB = 128
MEMORY_MAX_MB = 10240
TIMEOUT_MIN_S = 1
TIMEOUT_MAX_S = 900
MAX_PAYLOAD = 6 * 1024 * 1024  # 6291456
MAX_RESPONSE = MAX_PAYLOAD + 100  # 6291556
ENV_TOTAL_BYTES = 4096
URL_AUTH_TYPES = ("AWS_IAM", "NONE")
LAYERS_MAX = 5  # layers a function may use
