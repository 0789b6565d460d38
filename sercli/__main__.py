if __name__ == "__main__":
    from sercli.core import fastexit

    fastexit.install_signal_handlers()  # first: a Ctrl-C while sercli imports is an interrupt too
    try:
        from sercli.cli import main
    except fastexit.Interrupted as exc:
        fastexit.interrupted_at_start(exc)
    main()
