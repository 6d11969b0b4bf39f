"""The original P2P FACOM command name: ``python3 p2p-runner.py -t ...``."""

import sys

import p2p_facom

if __name__ == "__main__":
    sys.exit(p2p_facom.main())
