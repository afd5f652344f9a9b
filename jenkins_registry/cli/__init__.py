"""The command-line shell: parses argv, reads the environment, prints, and maps errors to exit codes.

Only this package touches sys.argv, os.environ (for defaults), logging configuration, prompts and
sys.exit; everything under it lives in the library modules of `jenkins_registry`.
"""
