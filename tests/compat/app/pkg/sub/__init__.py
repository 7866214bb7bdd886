from pkg.sub import leaf
