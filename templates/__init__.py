"""The jinja2 templates, shipped inside the wheel as the package `jenkins_registry.templates`."""
