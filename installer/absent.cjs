// Optional modules the single executable leaves out (see installer/bundle.mjs): their users
// require them inside try/catch and carry on without them.
throw new Error('not bundled in the single executable');
