export const handler = async (event) => ({statusCode: 200, body: JSON.stringify(process.env['AWS_LAMBDA_LOG_STREAM_NAME'])});
