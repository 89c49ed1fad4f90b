//! `cxlake cluster scheduler|executor`: the nodes of a cxlake cluster (see `cxlake_cluster`),
//! run in the foreground until stopped, as a service manager expects.

use std::process::ExitCode;

use cxlake_cluster::executor::{self, ExecutorOptions};
use cxlake_cluster::scheduler::{self, SchedulerOptions};

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Role {
    /// Plan queries and hand their tasks to executors
    Scheduler {
        /// Address to listen on (0.0.0.0 for every interface)
        #[arg(long, default_value = executor::DEFAULT_BIND_HOST)]
        bind_host: String,
        /// Port to listen on; 0 picks a free one (printed on standard output)
        #[arg(long, default_value_t = cxlake_cluster::DEFAULT_SCHEDULER_PORT)]
        port: u16,
        /// Host name executors and clients reach this scheduler by
        #[arg(long, default_value = scheduler::DEFAULT_EXTERNAL_HOST)]
        external_host: String,
        /// Seconds without a heartbeat before an executor counts as lost and its tasks run elsewhere
        #[arg(long, value_name = "SECONDS", default_value_t = scheduler::DEFAULT_EXECUTOR_TIMEOUT_SECONDS)]
        executor_timeout: u64,
    },
    /// Run tasks for a scheduler; local table files must be at the same paths as on the client,
    /// object stores are reached with this node's environment
    Executor {
        /// The scheduler, df://HOST:PORT
        #[arg(long, value_name = "URL", default_value_t = executor::default_scheduler_url())]
        scheduler: String,
        /// Address to listen on (0.0.0.0 for every interface)
        #[arg(long, default_value = executor::DEFAULT_BIND_HOST)]
        bind_host: String,
        /// Host name the scheduler and other executors reach this executor by [default: --bind-host]
        #[arg(long)]
        external_host: Option<String>,
        /// Arrow Flight port results and shuffle data are fetched from
        #[arg(long, default_value_t = executor::DEFAULT_FLIGHT_PORT)]
        port: u16,
        /// gRPC port the scheduler hands tasks to
        #[arg(long, default_value_t = executor::DEFAULT_GRPC_PORT)]
        grpc_port: u16,
        /// Tasks run at once [default: the number of cores]
        #[arg(long, value_name = "N", default_value_t = 0, hide_default_value = true)]
        vcores: usize,
        /// Directory for shuffle files [default: a new temporary directory]
        #[arg(long, value_name = "DIR")]
        work_dir: Option<String>,
        /// Seconds between heartbeats to the scheduler (keep it well under its --executor-timeout)
        #[arg(long, value_name = "SECONDS", default_value_t = executor::DEFAULT_HEARTBEAT_SECONDS)]
        heartbeat: u64,
    },
}

pub async fn run(role: Role) -> ExitCode {
    let outcome = match role {
        Role::Scheduler { bind_host, port, external_host, executor_timeout } => {
            let options =
                SchedulerOptions { bind_host, port, external_host, executor_timeout_seconds: executor_timeout };
            scheduler::run(options, |address| println!("cxlake scheduler listening on {address}")).await
        }
        Role::Executor { scheduler, bind_host, external_host, port, grpc_port, vcores, work_dir, heartbeat } => {
            println!("cxlake executor serving {scheduler} on {bind_host}:{port} (tasks on port {grpc_port})");
            let options = ExecutorOptions {
                scheduler,
                bind_host,
                external_host,
                port,
                grpc_port,
                vcores,
                work_dir,
                heartbeat_seconds: heartbeat,
            };
            executor::run(options).await
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}
