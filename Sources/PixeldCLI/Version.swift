/// The version that `pixeld --version` and `pixeld-ingest --version` print.
package let pixeldVersion = "0.1.0"
