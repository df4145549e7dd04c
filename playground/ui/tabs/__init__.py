"""One module per tab: ``build(ctx)`` makes the components, ``wire(tab, ctx)`` the events."""
