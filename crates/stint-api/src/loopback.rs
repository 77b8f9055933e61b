//! What stint's client answers on its loopback ports: the browser coming back from a sign-in
//! (`stint login`) and the AWS SDKs asking `stint agent` for credentials. Any process on the
//! machine, and any web page the person opens, can send these ports whatever it likes, so
//! the reading and deciding live here, free of sockets, where the fuzz targets reach them;
//! the listeners (timeouts, size caps, the router) stay in `stint-cli`.

pub mod agent;
pub mod callback;
