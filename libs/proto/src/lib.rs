//! Generated messages, clients and servers for every inventory service, with the descriptor
//! sets that server reflection publishes.

/// Encoded `FileDescriptorSet` of google/rpc/error_details.proto, served by reflection so
/// clients can decode ErrorInfo and BadRequest details.
pub const ERROR_DETAILS_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/error_details_descriptor.bin"));

pub mod stock {
    pub mod v1 {
        tonic::include_proto!("inventory.stock.v1");

        /// Encoded `FileDescriptorSet` of `inventory.stock.v1`, for server reflection.
        pub const FILE_DESCRIPTOR_SET: &[u8] =
            include_bytes!(concat!(env!("OUT_DIR"), "/stock_descriptor.bin"));

        /// Fully qualified service name, as health checks and reflection know it.
        pub const SERVICE_NAME: &str = "inventory.stock.v1.StockService";
    }
}

pub mod allocation {
    pub mod v1 {
        tonic::include_proto!("inventory.allocation.v1");

        /// Encoded `FileDescriptorSet` of `inventory.allocation.v1`, for server reflection.
        pub const FILE_DESCRIPTOR_SET: &[u8] =
            include_bytes!(concat!(env!("OUT_DIR"), "/allocation_descriptor.bin"));

        /// Fully qualified service name, as health checks and reflection know it.
        pub const SERVICE_NAME: &str = "inventory.allocation.v1.AllocationService";
    }
}

pub mod replenishment {
    pub mod v1 {
        tonic::include_proto!("inventory.replenishment.v1");

        /// Encoded `FileDescriptorSet` of `inventory.replenishment.v1`, for server reflection.
        pub const FILE_DESCRIPTOR_SET: &[u8] =
            include_bytes!(concat!(env!("OUT_DIR"), "/replenishment_descriptor.bin"));

        /// Fully qualified service name, as health checks and reflection know it.
        pub const SERVICE_NAME: &str = "inventory.replenishment.v1.ReplenishmentService";
    }
}

pub mod reconciliation {
    pub mod v1 {
        tonic::include_proto!("inventory.reconciliation.v1");

        /// Encoded `FileDescriptorSet` of `inventory.reconciliation.v1`, for server reflection.
        pub const FILE_DESCRIPTOR_SET: &[u8] =
            include_bytes!(concat!(env!("OUT_DIR"), "/reconciliation_descriptor.bin"));

        /// Fully qualified service name, as health checks and reflection know it.
        pub const SERVICE_NAME: &str = "inventory.reconciliation.v1.ReconciliationService";
    }
}
