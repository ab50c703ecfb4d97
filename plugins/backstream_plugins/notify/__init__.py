"""Built-in notifiers: ``webhook`` (signed JSON POST) and ``email`` (SMTP), one module each."""
